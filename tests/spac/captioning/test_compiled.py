"""Compiled caption texts: the same text as the ordinary writer, spans at the phrases, the ordinary writer
for a phrase that tidying could change."""

from __future__ import annotations

from spac.attributes import AttributeValue, load_schema
from spac.captioning.compiled import compile_text, placeholders, write
from spac.captioning.grammar import person_for, tidy
from spac.captioning.slots import FillContext, fill

TEMPLATE = "{a upper}, worn by the {gender}. {their} {lower} {v:look} dark. {pair shoes} too"


def _render(said: FillContext, ctx: FillContext) -> str:
    return tidy(fill(TEMPLATE, said, ctx.person.plural_pronoun))


PEOPLE = {gender: person_for(gender) for gender in ("woman", "unknown")}  # a shape is cached per person object


def _ctx(gender: str = "woman", upper: str = "orange coat") -> FillContext:
    schema = load_schema()
    values = {"upper": schema.value("upper", upper), "lower": schema.value("lower", "blue jeans")}
    values["shoes"] = schema.value("shoes", "white sneakers")
    return FillContext(PEOPLE[gender], values)


def test_a_compiled_text_is_the_ordinary_text_with_its_phrases_spans() -> None:
    for gender in ("woman", "unknown"):
        ctx = _ctx(gender)
        text, spans = write({}, "shape", ctx, ctx, _render)
        assert text == _render(ctx, ctx)
        assert [text[s:e] for s, e in spans] == [
            "orange coat",
            *(["woman"] if gender == "woman" else []),
            "blue jeans",
            "white sneakers",
        ]
    assert text.startswith("An orange coat, worn by the person. Their blue jeans look dark. A pair of white sneakers")


def test_a_shape_is_compiled_once_per_person_and_filled_with_each_value() -> None:
    cache: dict = {}
    for upper in ("orange coat", "red t-shirt", "black coat"):
        ctx = _ctx(upper=upper)
        assert write(cache, "shape", ctx, ctx, _render)[0] == _render(ctx, ctx)
    assert len(cache) == 1


def test_slots_that_start_a_sentence_are_capitalised() -> None:
    compiled = compile_text(tidy(fill(TEMPLATE, placeholders(_ctx()), False)))
    assert [choice % 2 for _, _, choice, _ in compiled.slots] == [1, 0, 0, 1]  # odd: the capitalised phrase


def test_a_phrase_tidying_could_change_is_written_the_ordinary_way_without_spans() -> None:
    ctx = _ctx()
    odd = AttributeValue("upper", "coat", "red", "red coat. ", plural=False)  # a phrase no schema gives
    odd_ctx = FillContext(ctx.person, {**ctx.values, "upper": odd})
    cache: dict = {}
    write(cache, "shape", ctx, ctx, _render)
    text, spans = write(cache, "shape", odd_ctx, odd_ctx, _render)
    assert (text, spans) == (_render(odd_ctx, odd_ctx), None)
