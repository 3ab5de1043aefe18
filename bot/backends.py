"""Build the configured backend from settings (the only place that knows all three)."""

from __future__ import annotations

from adapters.base import Backend
from bot.config import ConfigError, Settings


def build_backend(settings: Settings, name: str | None = None) -> Backend:
    backend = settings.require_backend(name)
    if backend == "wren":
        from adapters.wren import WrenBackend, WrenSettings

        return WrenBackend(WrenSettings(base_url=settings.WREN_BASE_URL or "",
                                        api_key=settings.WREN_API_KEY or "",
                                        project_id=(settings.WREN_PROJECT_ID or "").strip() or None,
                                        request_timeout=settings.WREN_TIMEOUT,
                                        table_rows=settings.WREN_TABLE_ROWS,
                                        streaming=settings.WREN_STREAM,
                                        max_response_bytes=settings.BACKEND_MAX_RESPONSE_BYTES))
    if backend == "clickzetta":
        from adapters.clickzetta import ClickZettaBackend, ClickZettaSettings

        try:  # the adapter validates ids and URLs; its ValueError names the variable
            cz_settings = ClickZettaSettings(
                base_url=settings.CLICKZETTA_BASE_URL or "",
                app_secret_key=settings.CLICKZETTA_APP_SECRET_KEY or "",
                tenant_id=settings.CLICKZETTA_TENANT_ID or "",
                user_id=settings.CLICKZETTA_USER_ID or "",
                domain_id=settings.CLICKZETTA_DOMAIN_ID or "",
                poll_interval=settings.CLICKZETTA_POLL_INTERVAL,
                overall_timeout=settings.CLICKZETTA_TIMEOUT,
                request_timeout=settings.CLICKZETTA_REQUEST_TIMEOUT,
                model_name=(settings.CLICKZETTA_MODEL_NAME or "").strip() or None,
                warehouse_url=settings.CLICKZETTA_WAREHOUSE_URL,
                max_response_bytes=settings.BACKEND_MAX_RESPONSE_BYTES)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return ClickZettaBackend(cz_settings)
    from adapters.textql import TextQLBackend, TextQLSettings

    return TextQLBackend(TextQLSettings(base_url=settings.TEXTQL_BASE_URL,
                                        member_id=settings.TEXTQL_MEMBER_ID or "",
                                        api_key=settings.TEXTQL_API_KEY or "",
                                        dataset=settings.TEXTQL_DATASET,
                                        mode=settings.TEXTQL_MODE,
                                        use_ontology=settings.TEXTQL_USE_ONTOLOGY,
                                        ontology_connector_id=settings.TEXTQL_ONTOLOGY_CONNECTOR_ID,
                                        clifford=settings.TEXTQL_CLIFFORD,
                                        stream_idle_timeout=settings.TEXTQL_STREAM_IDLE_TIMEOUT,
                                        allow_private_images=settings.TEXTQL_ALLOW_PRIVATE_IMAGES,
                                        max_response_bytes=settings.BACKEND_MAX_RESPONSE_BYTES))
