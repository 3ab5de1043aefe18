"""Follow-up questions built from a result's columns, when the backend proposes none."""

from __future__ import annotations

from adapters.answer import Answer, Column, Outcome, SuggestionsPart, TablePart, TextPart
from bot.relay.suggestions import suggest, with_suggestions


def _table(*columns: Column, rows: tuple[tuple, ...] = ()) -> TablePart:
    return TablePart("t", columns, rows)


def test_time_measure_and_categories_give_the_usual_next_questions() -> None:
    table = _table(Column("order_date", "date"), Column("customer_state"), Column("product_category"),
                   Column("totalRevenue", "double"))
    assert suggest([table]) == ["Show total revenue by month",
                                "Compare total revenue to the same period last year",
                                "Top 10 customer state by total revenue"]


def test_ids_keys_and_table_prefixes_are_not_what_people_ask_about() -> None:
    table = _table(Column("s_store_sk", "bigint"), Column("s_store_id"), Column("s_store_name"),
                   Column("s_city"), Column("s_floor_space", "int"),
                   rows=(("1", "AAAB", "able", "Midway", "5000"),))
    assert suggest([table]) == ["Top 10 store name by floor space", "Break floor space down by city"]


def test_numbers_written_as_text_are_measures() -> None:
    table = _table(Column("region"), Column("orders"), rows=(("EU", "1,200"), ("US", "900")))
    assert suggest([table]) == ["Top 10 region by orders",
                                "Show orders by region over the last 12 months"]


def test_only_finished_answers_with_a_table_and_no_suggestions_of_their_own_get_them() -> None:
    table = _table(Column("region"), Column("orders", "int"))
    done = Answer(parts=(TextPart("x", "hi"), table)).finish(Outcome.DONE)
    built = with_suggestions(done)
    [part] = [p for p in built.parts if isinstance(p, SuggestionsPart)]
    assert part.questions[0] == "Top 10 region by orders"
    assert with_suggestions(Answer(parts=(table,)).finish(Outcome.FAILED)) .parts == (table,)
    no_table = Answer(parts=(TextPart("x", "hi"),)).finish(Outcome.DONE)
    assert with_suggestions(no_table) is no_table
    own = Answer(parts=(table, SuggestionsPart("s", ("Mine?",)))).finish(Outcome.DONE)
    assert with_suggestions(own) is own
