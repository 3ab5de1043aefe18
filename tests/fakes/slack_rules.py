"""Block Kit rules the Slack fake enforces beyond sizes: elements, ids, surfaces, response_url.

``tests/fakes/slack.py`` checks the per-message budgets (blocks, characters, tables). The rules
here are the ones Slack checks per element and per surface, with the numbers slack_sdk's own
models carry (``slack_sdk/models/blocks/basic_components.py``, ``block_elements.py``,
``views/__init__.py``) and the answers Slack gives:

* a text object (section text and fields, context elements, header, labels) must not be empty;
* a button: ``text`` plain_text of 1–75 characters, ``value`` ≤ 2,000, ``url`` ≤ 3,000,
  ``action_id`` ≤ 255, ``style`` ``primary``/``danger``, ``accessibility_label`` ≤ 75; the
  feedback buttons of ``context_actions`` alike (text ≤ 75, value ≤ 2,000);
* an option (selects, overflow, radio buttons, checkboxes): ``text`` ≤ 75, ``value`` ≤ 150
  (Slack's option object is stricter than a button);
* ``action_id`` unique within one block (Slack: `` `action_id` "x" already exists``);
  ``block_id`` unique within one message or view;
* views: ``home`` for ``views.publish``, ``modal`` for ``views.open``; 1–100 blocks; a modal's
  title 1–24 characters, ``close``/``submit`` ≤ 24, a ``submit`` when it holds inputs;
  ``private_metadata`` ≤ 3,000, ``callback_id`` ≤ 255. Slack answers a bad view with
  ``invalid_arguments`` and ``response_metadata.messages`` pointing into ``/view``;
* a ``response_url`` body: ``text`` or ``blocks``, ``response_type`` ``ephemeral`` or
  ``in_channel``, boolean ``replace_original``/``delete_original``. A webhook answers an error
  as HTTP 400 with the bare error code as plain text (``no_text``, ``invalid_blocks``…).

Every check returns Slack's ``"<message> [json-pointer:<where>]"`` strings; the caller decides
the error code.
"""

from __future__ import annotations

from typing import Any

BUTTON_TEXT = 75
BUTTON_VALUE = 2000
OPTION_TEXT = 75
OPTION_VALUE = 150
ACTION_ID = 255
URL = 3000
BUTTON_STYLES = ("primary", "danger")
VIEW_BLOCKS = 100
VIEW_TITLE = 24
VIEW_METADATA = 3000
RESPONSE_TYPES = ("ephemeral", "in_channel")
_OPTION_ELEMENTS = {"static_select", "multi_static_select", "overflow", "radio_buttons",
                    "checkboxes"}
_TEXT_TYPES = ("plain_text", "mrkdwn")


def _longer(value: Any, limit: int, at: str) -> list[str]:
    if isinstance(value, str) and len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{at}]"]
    return []


def text_object_errors(obj: Any, at: str, *, limit: int | None = None,
                       plain: bool = False) -> list[str]:
    """A text object: a known type (``plain_text`` where ``plain``) and 1+ characters."""
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{at}]"]
    errors: list[str] = []
    kind = obj.get("type")
    if kind not in (("plain_text",) if plain else _TEXT_TYPES):
        errors.append(f"must be {'plain_text' if plain else 'a text object type'} "
                      f"[json-pointer:{at}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{at}/text]")
    elif limit is not None:
        errors += _longer(text, limit, f"{at}/text")
    return errors


def element_errors(element: Any, at: str) -> list[str]:
    """One interactive element (button, select, overflow…) of a block."""
    if not isinstance(element, dict):
        return [f"must be an object [json-pointer:{at}]"]
    errors = _longer(element.get("action_id"), ACTION_ID, f"{at}/action_id")
    kind = element.get("type")
    if kind == "button":
        errors += text_object_errors(element.get("text"), f"{at}/text", limit=BUTTON_TEXT,
                                     plain=True)
        errors += _longer(element.get("value"), BUTTON_VALUE, f"{at}/value")
        errors += _longer(element.get("url"), URL, f"{at}/url")
        errors += _longer(element.get("accessibility_label"), BUTTON_TEXT,
                          f"{at}/accessibility_label")
        if "style" in element and element["style"] not in BUTTON_STYLES:
            errors.append(f"must be one of {list(BUTTON_STYLES)} [json-pointer:{at}/style]")
    elif kind == "feedback_buttons":
        for side in ("positive_button", "negative_button"):
            button = element.get(side)
            where = f"{at}/{side}"
            if not isinstance(button, dict):
                errors.append(f"missing required field: {side} [json-pointer:{where}]")
                continue
            errors += text_object_errors(button.get("text"), f"{where}/text", limit=BUTTON_TEXT,
                                         plain=True)
            errors += _longer(button.get("value"), BUTTON_VALUE, f"{where}/value")
            errors += _longer(button.get("accessibility_label"), BUTTON_TEXT,
                              f"{where}/accessibility_label")
    elif kind in _OPTION_ELEMENTS:
        groups = element.get("option_groups")
        options = [(f"{at}/options/{k}", o) for k, o in enumerate(element.get("options") or [])]
        for g, group in enumerate(groups or []):
            for k, o in enumerate((group or {}).get("options") or []):
                options.append((f"{at}/option_groups/{g}/options/{k}", o))
        for where, option in options:
            if not isinstance(option, dict):
                errors.append(f"must be an option object [json-pointer:{where}]")
                continue
            errors += text_object_errors(option.get("text"), f"{where}/text", limit=OPTION_TEXT,
                                         plain=kind != "radio_buttons" and kind != "checkboxes")
            value = option.get("value")
            if not isinstance(value, str) or not value:
                errors.append(f"must be more than 0 characters [json-pointer:{where}/value]")
            else:
                errors += _longer(value, OPTION_VALUE, f"{where}/value")
    return errors


def block_rules(block: dict[str, Any], at: str) -> list[str]:
    """The element and text-object rules of one block, and its action_ids being unique."""
    kind = block.get("type")
    errors: list[str] = []
    elements: list[tuple[str, Any]] = []
    if kind == "section":
        if "text" in block:
            errors += text_object_errors(block["text"], f"{at}/text")
        for j, f in enumerate(block.get("fields") or []):
            errors += text_object_errors(f, f"{at}/fields/{j}")
        if "text" not in block and not block.get("fields"):
            errors.append(f"must provide either text or fields [json-pointer:{at}]")
        if "accessory" in block:
            elements.append((f"{at}/accessory", block["accessory"]))
    elif kind == "header":
        errors += text_object_errors(block.get("text"), f"{at}/text", plain=True)
    elif kind == "context":
        for j, el in enumerate(block.get("elements") or []):
            if isinstance(el, dict) and el.get("type") in _TEXT_TYPES:
                errors += text_object_errors(el, f"{at}/elements/{j}")
    elif kind in ("actions", "context_actions"):
        elements += [(f"{at}/elements/{j}", el) for j, el in enumerate(block.get("elements") or [])]
    elif kind == "input":
        elements.append((f"{at}/element", block.get("element")))
        errors += text_object_errors(block.get("label"), f"{at}/label", limit=2000, plain=True)
    seen: set[str] = set()
    for where, element in elements:
        errors += element_errors(element, where)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                errors.append(f"`action_id` \"{action_id}\" already exists "
                              f"[json-pointer:{where}/action_id]")
            seen.add(action_id)
    return errors


def block_id_errors(blocks: list[Any], at: str = "/blocks") -> list[str]:
    """``block_id`` is unique within one message or view (Slack generates one when absent)."""
    errors: list[str] = []
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                errors.append(f"`block_id` \"{block_id}\" already exists "
                              f"[json-pointer:{at}/{i}/block_id]")
            seen.add(block_id)
    return errors


def view_errors(view: Any, kind: str) -> list[str]:
    """A view's own fields (its blocks are checked like a message's, with 100 allowed)."""
    if not isinstance(view, dict):
        return ["must be an object [json-pointer:/view]"]
    errors: list[str] = []
    if view.get("type") != kind:
        errors.append(f"must be {kind} [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        errors.append("must provide at least 1 item [json-pointer:/view/blocks]")
    elif len(blocks) > VIEW_BLOCKS:
        errors.append(f"no more than {VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]")
    errors += _longer(view.get("private_metadata"), VIEW_METADATA, "/view/private_metadata")
    errors += _longer(view.get("callback_id"), ACTION_ID, "/view/callback_id")
    if kind == "modal":
        errors += text_object_errors(view.get("title"), "/view/title", limit=VIEW_TITLE,
                                     plain=True)
        for key in ("close", "submit"):
            if key in view:
                errors += text_object_errors(view[key], f"/view/{key}", limit=VIEW_TITLE,
                                             plain=True)
        inputs = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks or [])
        if inputs and "submit" not in view:
            errors.append("submit is required when a view has input blocks "
                          "[json-pointer:/view/submit]")
    return errors


def response_errors(body: Any) -> str | None:
    """The error code a ``response_url`` answers for ``body`` beyond its blocks, or None."""
    if not isinstance(body, dict):
        return "invalid_payload"
    if body.get("delete_original") is True:
        return None
    for key in ("replace_original", "delete_original"):
        if key in body and not isinstance(body[key], bool):
            return "invalid_payload"
    if "response_type" in body and body["response_type"] not in RESPONSE_TYPES:
        return "invalid_payload"
    text, blocks = body.get("text"), body.get("blocks")
    if not (isinstance(text, str) and text.strip()) and not blocks and not body.get("attachments"):
        return "no_text"
    return None
