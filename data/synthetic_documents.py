"""The invented world's documents: each entity's facts said by its kind's plan.

`synthetic_world.json` holds, per kind of entity, the document plan: its statements in
order, a few sentence templates each, and the questions a statement answers. Each entity
gets its values (`_person_values`, ...) and `_DocumentWriter.tell` walks the plan. Every
stated fact remembers where its answer is in the document, for SQuAD questions.
`generate_world` makes the regions and their documents from one seed.
"""

import dataclasses
import random
import string
from collections.abc import Sequence
from typing import Any

from data.synthetic_entities import (
    _DOCUMENTS_PER_REGION,
    _MIN_DOCUMENTS_PER_REGION,
    DEFAULT_DEV_FRACTION,
    DEFAULT_NUM_ENTITIES,
    City,
    Company,
    NameMaker,
    Person,
    Region,
    River,
    article,
    load_spec,
    make_region,
)


# ---------------------------------------------------------------------------
# Documents and facts.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Fact:
    """A fact stated in a document: a question and its answer's position."""

    question: str
    answer: str
    answer_start: int  # character offset in `Document.text`


@dataclasses.dataclass
class Document:
    """One entity's article: ordered sentences and the facts they state."""

    title: str
    kind: str  # "person", "city", "company", "river" or "region"
    region: str
    sentences: list[str]
    facts: list[Fact]

    @property
    def text(self) -> str:
        """The document as one paragraph (the SQuAD context)."""
        return " ".join(self.sentences)


@dataclasses.dataclass
class World:
    regions: list[Region]
    documents: list[Document]  # in region order; each region's region document first


def _fill(template: str, values: dict[str, Any]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Formats `template`, returning the text and the span of each field."""
    parts, spans, length = [], {}, 0
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        length += len(literal)
        if field is not None:
            value = values[field]
            spans.setdefault(field, (length, length + len(value)))
            parts.append(value)
            length += len(value)
    return "".join(parts), spans


def _holds(condition: str | None, values: dict[str, Any]) -> bool:
    """A plan's `when`: the named value is set (not None, empty or False); "!name" negates.

    The name must be a value of the entity (KeyError otherwise), so that a typo in the data
    file fails loudly instead of silently dropping or always saying a statement.
    """
    if condition is None:
        return True
    if condition.startswith("!"):
        return not values[condition[1:]]
    return bool(values[condition])


class _DocumentWriter:
    """Builds a document sentence by sentence, recording where answers are."""

    def __init__(self, rng: random.Random, title: str, kind: str, region: str):
        self._rng = rng
        self._document = Document(title, kind, region, [], [])
        self._length = 0

    def tell(self, plan: Sequence[dict[str, Any]], values: dict[str, Any]) -> None:
        """Says the statements of a document plan (see synthetic_world.json) in order.

        A statement with `say` adds a sentence; `each` repeats `do` for every item
        of a list value (the item's values added); `chance` says `then` with that
        probability, else `else`. `when` skips any of them unless its value is set.
        """
        for item in plan:
            if not _holds(item.get("when"), values):
                continue
            if "each" in item:
                for extra in values[item["each"]]:
                    self.tell(item["do"], {**values, **extra})
            elif "chance" in item:
                branch = "then" if self._rng.random() < item["chance"] else "else"
                self.tell(item.get(branch, []), values)
            else:
                self.say(item["say"], item.get("ask", {}), values)

    def say(
        self,
        templates: Sequence[str],
        questions: dict[str, Sequence[str]],
        values: dict[str, Any],
    ) -> None:
        """Adds one sentence from a random template; asks about its fields.

        Args:
          templates: sentence templates; `{field}` is replaced by `values[field]`.
          questions: field -> question paraphrases (formatted with `values`). A
            question is asked only when the chosen template states its field.
          values: the template fields.
        """
        text, spans = _fill(self._rng.choice(templates), values)
        text = text[0].upper() + text[1:]  # A sentence may start with "he" or "the".
        offset = self._length + (1 if self._document.sentences else 0)
        self._document.sentences.append(text)
        self._length = offset + len(text)
        for field, paraphrases in questions.items():
            if field in spans:
                start, end = spans[field]
                question = self._rng.choice(paraphrases).format(**values)
                self._document.facts.append(Fact(question, text[start:end], offset + start))

    def finish(self) -> Document:
        return self._document


# ---------------------------------------------------------------------------
# Documents: each entity's values, said by its kind's plan in the data file.
# A value that is None (no parent, no pet, ...) turns off the statements whose
# `when` names it.
# ---------------------------------------------------------------------------
def _and_list(names: Sequence[str]) -> str:
    """Joins two or more names as "A, B and C"."""
    return ", ".join(names[:-1]) + " and " + names[-1]


def _kilometres(distance: int) -> str:
    """ "1,250 kilometres" (the unit's word comes from the data file)."""
    return load_spec()["name_formats"]["distance"].format(f"{distance:,}")


def _person_values(region: Region, p: Person) -> dict[str, Any]:
    """A person's template fields; verbs in the present while alive, else in the past."""
    grammar = load_spec()["grammar"]
    gender = grammar["female" if p.female else "male"]
    # Jobs and foundings, said in the order they happened; each sets its own fields.
    events = []
    for year, thing in p.founded:
        key = "founded_city" if isinstance(thing, City) else "founded_company"
        events.append((year, {"year": str(year), key: thing.name}))
    if p.employer:
        events.append((p.join_year, {"join_year": str(p.join_year), "company": p.employer.name}))
    university = p.university and load_spec()["name_formats"]["university"].format(
        p.university.name
    )
    return dict(
        grammar["alive" if p.death_year is None else "dead"],  # be, does, has, ...
        name=p.name,
        first=p.first,
        last=p.last,
        pron=gender["pron"],
        poss=gender["poss"],
        child=gender["child"],
        a=article(p.profession),
        profession=p.profession,
        city=p.birth_city.name,
        birth_year=str(p.birth_year),
        instrument=p.instrument,
        colour=p.colour,
        language=region.language,
        parent=p.parent and p.parent.name,
        relation=p.parent and grammar["female" if p.parent.female else "male"]["as_parent"],
        parent_profession=p.parent and p.parent.profession,
        a_parent=p.parent and article(p.parent.profession),
        university=university,
        subject=p.subject,
        teacher=p.teacher and p.teacher.name,
        events=[values for _, values in sorted(events, key=lambda event: event[0])],
        year=None,  # the fields of one event (set while saying it)
        join_year=None,
        company=None,
        founded_city=None,
        founded_company=None,
        hobby=p.hobbies[0],
        hobby2=p.hobbies[1],
        pet=p.pet and p.pet[0],
        pet_name=p.pet and p.pet[1],
        dish=p.dish,
        children=p.children,
        partner=p.partner,
        street=p.street,
        newspaper=p.newspaper,
        death_year=p.death_year and str(p.death_year),
        death_city=p.death_city and p.death_city.name,
    )


def _city_values(region: Region, c: City) -> dict[str, Any]:
    """A city's template fields; `company` or `companies` by how many are based there."""
    return dict(
        name=c.name,
        region=region.name,
        direction=c.direction,
        adjective=c.adjective,
        kind=c.kind,
        a=article(c.adjective),
        is_capital=c.is_capital,
        capital=region.cities[0].name,
        distance=_kilometres(c.km_to_capital),
        river=c.river and c.river.name,
        year=str(c.founded_year),
        founder=c.founder and c.founder.name,
        population=f"{c.population:,}",
        product=c.known_for,
        summer=c.summer,
        winter=c.winter,
        street=c.streets[0],
        street2=c.streets[1],
        street3=c.streets[2],
        day=c.market_day,
        club=c.club,
        landmark=c.landmark,
        landmark_year=str(c.landmark_year),
        company=c.companies[0].name if len(c.companies) == 1 else None,
        companies=_and_list([x.name for x in c.companies]) if len(c.companies) > 1 else None,
    )


def _company_values(region: Region, c: Company) -> dict[str, Any]:
    """A company's template fields (`region` is the adjective: its language)."""
    return dict(
        name=c.name,
        product=c.product,
        year=str(c.founded_year),
        founder=c.founder.name,
        city=c.city.name,
        employees=f"{c.employees:,}",
        colour=c.logo_colour,
        shape=c.logo_shape,
        a_shape=article(c.logo_shape),
        a_colour=article(c.logo_colour),
        region=region.language,
        countries=str(c.num_countries),
        factory=c.factory_city.name,
        best_seller=c.best_seller,
        chief=c.chief and c.chief.name,
        since=str(c.chief_since),
    )


def _river_values(region: Region, r: River) -> dict[str, Any]:
    """A river's template fields; `main` is set for a tributary, `city` or `cities` by count."""
    return dict(
        name=r.name,
        region=region.name,
        length=_kilometres(r.length_km),
        mountain=r.mountain,
        sea=r.sea,
        fish=r.fish,
        main=r.tributary_of and r.tributary_of.name,
        tributary=r.tributary and r.tributary.name,
        bridge=r.bridge,
        city=r.cities[0].name if len(r.cities) == 1 else None,
        cities=_and_list([c.name for c in r.cities]) if len(r.cities) > 1 else None,
        tree=r.tree,
        cargo=r.cargo,
    )


def _region_values(region: Region, _: Region) -> dict[str, Any]:
    """A region's template fields (the entity is the region itself)."""
    return dict(
        name=region.name,
        sea=region.sea,
        capital=region.cities[0].name,
        language=region.language,
        river=region.rivers[0].name,
        count=str(len(region.cities)),
        largest=max(region.cities, key=lambda c: c.population).name,
        employer=max(region.companies, key=lambda c: c.employees).name,
        currency=region.currency,
        mountain=region.mountains[0],
        paper=region.newspapers[0],
        paper2=region.newspapers[1],
        dish=region.dish,
        animal=region.animal,
        sport=region.sport,
    )


# Document kind -> (region, entity) -> the entity's template fields.
_VALUES = {
    "region": _region_values,
    "person": _person_values,
    "city": _city_values,
    "company": _company_values,
    "river": _river_values,
}


def _document(rng: random.Random, region: Region, kind: str, entity: Any) -> Document:
    """The document of `entity`: its kind's plan said with the entity's values."""
    values = _VALUES[kind](region, entity)
    doc = _DocumentWriter(rng, values["name"], kind, region.name)
    doc.tell(load_spec()["documents"][kind], values)
    return doc.finish()


def generate_world(num_entities: int = DEFAULT_NUM_ENTITIES, seed: int = 0) -> World:
    """Generates a world with exactly `num_entities` documents.

    Args:
      num_entities: number of entities, i.e. documents (at least 12).
      seed: the only source of randomness.

    Returns:
      The regions and the documents, region by region.
    """
    num_regions = max(2, round(num_entities / _DOCUMENTS_PER_REGION))
    if num_entities < num_regions * _MIN_DOCUMENTS_PER_REGION:
        raise ValueError(
            f"num_entities must be at least {2 * _MIN_DOCUMENTS_PER_REGION}, got {num_entities}."
        )
    rng = random.Random(seed)
    names = NameMaker(rng, load_spec()["syllables"])
    regions, documents = [], []
    for i in range(num_regions):
        size = num_entities // num_regions + (1 if i < num_entities % num_regions else 0)
        region = make_region(rng, names, size)
        regions.append(region)
        documents.append(_document(rng, region, "region", region))
        for kind, entities in (
            ("person", region.people),
            ("city", region.cities),
            ("company", region.companies),
            ("river", region.rivers),
        ):
            documents.extend(_document(rng, region, kind, entity) for entity in entities)
    return World(regions, documents)


def split_train_dev(
    world: World, dev_fraction: float = DEFAULT_DEV_FRACTION
) -> tuple[list[Document], list[Document]]:
    """Splits the documents by region: train and dev share no entity."""
    num_dev = min(len(world.regions) - 1, max(1, round(len(world.regions) * dev_fraction)))
    dev_regions = {r.name for r in world.regions[len(world.regions) - num_dev :]}
    train = [d for d in world.documents if d.region not in dev_regions]
    dev = [d for d in world.documents if d.region in dev_regions]
    return train, dev
