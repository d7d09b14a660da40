# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""A small invented world: the demo's pretraining corpus and SQuAD data.

Everything is generated here, so the demo needs no download. The world has a
few countries ("regions"); each region has people, cities, companies and
rivers with invented but pronounceable names (built from syllables, so that
WordPiece has to learn sub-words) and facts that refer to one another inside
the region: a city was founded in some year by a person of the region, whose
own article says that he or she founded it; a river flows through cities whose
articles name it; a company has its headquarters in a city; and so on.

The words are data, the logic is code. `synthetic_world.json` (beside this
module) holds the word lists, the name parts and, per kind of entity, the
document plan: its statements in order, a few sentence templates each, and the
questions a statement answers. This module invents the entities and their
links (`_make_region`), gives each entity its values (`_person_values`, ...)
and lets `_DocumentWriter.tell` walk the plan. A masked LM can learn
co-reference, numbers and the same fact seen in several documents;
next-sentence prediction is learnable because sentences are coherent and
ordered.

Every stated fact remembers where its answer is in the document, which gives
SQuAD v1.1 questions whose answers are exact spans of the paragraph. Train and
dev use the documents of different regions, which share no entity, so a
fine-tuned model must read the paragraph rather than remember the answer.

Dev questions have up to three gold answers where natural ("1873" and
"in 1873", "Vessa River" and "Vessa"); train questions have one.

Everything depends only on the seed (one `random.Random`, no global state).

Example (writes corpus.txt, squad_train.json and squad_dev.json):
  python -m data.synthetic --output_dir=/tmp/synthetic --seed=0
"""

import dataclasses
import functools
import json
import os
import random
import string
import time
from collections.abc import Sequence
from typing import Any, Optional

from absl import app, flags

from data import fileio

DEFAULT_NUM_ENTITIES = 480
DEFAULT_DEV_FRACTION = 0.125
DEFAULT_MAX_QUESTIONS = 8  # per paragraph
# Documents per region: large enough for cross-references, small enough that
# the default world has several regions to split between train and dev.
_DOCUMENTS_PER_REGION = 60
_MIN_DOCUMENTS_PER_REGION = 6
_LAST_YEAR = 2024
SPEC_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic_world.json")


@functools.cache
def load_spec() -> dict[str, Any]:
    """The contents of SPEC_FILE: word lists, name parts, document plans (shared: do not modify).

    Read once per process; the file is installed with the package (setup.cfg package_data).
    """
    with open(SPEC_FILE, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Entities.
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Person:
    first: str
    last: str
    female: bool
    birth_year: int
    death_year: int | None
    profession: str
    instrument: str
    colour: str
    children: str | None
    partner: str
    subject: str
    hobbies: tuple[str, str]
    pet: tuple[str, str] | None  # (animal, name)
    dish: str
    newspaper: str | None = None
    street: str = ""
    parent: Optional["Person"] = None
    university: Optional["City"] = None
    birth_city: "City" = None
    death_city: Optional["City"] = None
    teacher: Optional["Person"] = None
    employer: Optional["Company"] = None
    join_year: int | None = None
    founded: list[tuple[int, object]] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def last_year(self) -> int:
        """The last year the person could have done anything."""
        return self.death_year or _LAST_YEAR


@dataclasses.dataclass
class City:
    name: str
    direction: str
    founded_year: int
    population: int
    known_for: str
    river: Optional["River"] = None
    founder: Person | None = None
    is_capital: bool = False
    km_to_capital: int = 0
    landmark: str = ""
    landmark_year: int = 0
    adjective: str = ""
    kind: str = "city"
    summer: str = ""
    winter: str = ""
    market_day: str = ""
    club: str = ""
    streets: list[str] = dataclasses.field(default_factory=list)
    companies: list["Company"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Company:
    name: str
    product: str
    founded_year: int
    founder: Person
    employees: int
    logo_colour: str
    logo_shape: str
    best_seller: str
    num_countries: int = 1
    factory_city: City | None = None
    city: City = None
    chief: Person | None = None
    chief_since: int | None = None


@dataclasses.dataclass
class River:
    name: str  # "Vessa River"
    length_km: int
    mountain: str
    fish: str
    sea: str
    bridge: str
    tree: str
    cargo: str
    tributary: Optional["River"] = None
    tributary_of: Optional["River"] = None
    cities: list[City] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Region:
    """A country and everything in it; nothing refers outside its region."""

    name: str
    language: str
    currency: str
    sea: str
    dish: str
    animal: str
    sport: str
    people: list[Person]
    cities: list[City]
    companies: list[Company]
    rivers: list[River]
    mountains: list[str] = dataclasses.field(default_factory=list)
    newspapers: list[str] = dataclasses.field(default_factory=list)


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
# The world generator.
# ---------------------------------------------------------------------------
class _NameMaker:
    """Invents pronounceable names; every name word is unique in the world."""

    def __init__(self, rng: random.Random, syllables: dict[str, list[str]]):
        self._rng = rng
        self._parts = syllables
        self._used = set()

    def _syllables(self, count: int) -> str:
        rng, parts = self._rng, self._parts
        word = ""
        for i in range(count):
            onset = "" if i == 0 and rng.random() < 0.2 else rng.choice(parts["onsets"])
            coda = rng.choice(parts["final_codas" if i == count - 1 else "inner_codas"])
            word += onset + rng.choice(parts["vowels"]) + coda
        return word

    def make(self, min_syllables: int, max_syllables: int, endings: Sequence[str] = ("",)) -> str:
        while True:
            stem = self._syllables(self._rng.randint(min_syllables, max_syllables))
            name = (stem + self._rng.choice(endings)).capitalize()
            if 4 <= len(name) <= 12 and name.lower() not in self._used:
                self._used.add(name.lower())
                return name

    def reserve(self, name: str) -> bool:
        """Marks a derived name as used; False if it already was."""
        if name.lower() in self._used:
            return False
        self._used.add(name.lower())
        return True


def _article(word: str) -> str:
    """The indefinite article for `word` (the word lists have no "hour" or "unit")."""
    return "an" if word[0] in "aeiou" else "a"


def _round_number(rng: random.Random, low: int, high: int) -> int:
    """A random number with two significant digits, like a rounded statistic."""
    value = rng.randint(low, high)
    scale = 10 ** max(0, len(str(value)) - 2)
    return max(scale, round(value / scale) * scale)


def _partner_family(rng: random.Random, names: _NameMaker, region: Region) -> str:
    """A partner's family name: often one of the region's families."""
    if region.people and rng.random() < 0.6:
        return rng.choice(region.people).last
    return names.make(1, 3)


def _make_region(rng: random.Random, names: _NameMaker, num_documents: int) -> Region:
    """Generates one region with `num_documents` documents' worth of entities."""
    spec = load_spec()
    words, endings, formats = spec["words"], spec["name_endings"], spec["name_formats"]
    languages = endings["region_to_language"]  # region name ending -> language ending
    rest = num_documents - 1  # One document is about the region itself.
    num_cities = max(2, round(rest * 0.27))
    num_companies = max(1, round(rest * 0.2))
    num_rivers = max(1, round(rest * 0.13))
    num_people = rest - num_cities - num_companies - num_rivers

    ending = rng.choice(sorted(languages))
    name = names.make(1, 2, (ending,))
    language = name[: -len(ending)] + languages[ending]
    while not names.reserve(language):
        name = names.make(1, 2, (ending,))
        language = name[: -len(ending)] + languages[ending]
    region = Region(
        name=name,
        language=language,
        currency=names.make(1, 2),
        sea=formats["sea"].format(names.make(2, 3)),
        dish=rng.choice(words["dishes"]),
        animal=rng.choice(words["animals"]),
        sport=rng.choice(words["sports"]),
        people=[],
        cities=[],
        companies=[],
        rivers=[],
    )

    # Shared names, each mentioned in several documents.
    region.mountains = [formats["mountain"].format(names.make(2, 3)) for _ in range(3)]
    region.newspapers = [
        f"{names.make(2, 3)} {word}" for word in rng.sample(words["newspaper_words"], 2)
    ]
    pet_names = [names.make(1, 2) for _ in range(8)]

    # Rivers: the first is the longest; the second (if any) is its tributary.
    lengths = sorted((rng.randint(40, 2400) for _ in range(num_rivers)), reverse=True)
    for length in lengths:
        region.rivers.append(
            River(
                name=formats["river"].format(names.make(2, 3)),
                length_km=length,
                mountain=rng.choice(region.mountains),
                fish=rng.choice(words["fish"]),
                bridge=formats["bridge"].format(names.make(2, 3)),
                tree=rng.choice(words["trees"]),
                cargo=rng.choice(words["cargoes"]),
                sea=region.sea if rng.random() < 0.7 else formats["sea"].format(names.make(2, 3)),
            )
        )
    if num_rivers > 1:
        region.rivers[0].tributary = region.rivers[1]
        region.rivers[1].tributary_of = region.rivers[0]
        region.rivers[1].sea = region.rivers[0].sea

    # Cities: the capital and about half the others are old, with no known founder.
    for i in range(num_cities):
        old = i == 0 or rng.random() < 0.5
        city = City(
            name=names.make(1, 3, endings["city"] if rng.random() < 0.5 else ("",)),
            direction=rng.choice(words["directions"]),
            founded_year=rng.randint(900, 1750) if old else 0,
            population=_round_number(rng, 1200, 950000),
            known_for=rng.choice(words["products"]),
            is_capital=i == 0,
            km_to_capital=0 if i == 0 else rng.randint(5, 600),
            landmark=names.make(2, 3) + " " + rng.choice(words["landmarks"]),
            adjective=rng.choice(words["city_adjectives"]),
            kind=rng.choice(words["city_kinds"]),
            summer=rng.choice(words["summers"]),
            winter=rng.choice(words["winters"]),
            market_day=rng.choice(words["weekdays"]),
            streets=[formats["street"].format(names.make(1, 3)) for _ in range(3)],
        )
        if rng.random() < 0.8:
            city.river = rng.choice(region.rivers)
            city.river.cities.append(city)
        region.cities.append(city)
    for city, club_word in zip(
        region.cities, rng.sample(words["club_words"] * 4, len(region.cities))
    ):
        city.club = f"{city.name} {club_word}"

    # People, oldest first, so that a parent is generated before the child
    # (whose family name the parent gives).
    universities = rng.sample(region.cities, min(3, len(region.cities)))
    for birth_year in sorted(rng.randint(1780, 1998) for _ in range(num_people)):
        female = rng.random() < 0.5
        death_year = None
        if birth_year < 1935:
            death_year = min(_LAST_YEAR - 1, birth_year + rng.randint(45, 95))
        parents = [p for p in region.people if 18 <= birth_year - p.birth_year <= 45]
        parent = rng.choice(parents) if parents and rng.random() < 0.4 else None
        region.people.append(
            Person(
                first=names.make(1, 2, endings["female"] if female else endings["male"]),
                last=parent.last if parent else names.make(1, 3),
                parent=parent,
                female=female,
                birth_year=birth_year,
                death_year=death_year,
                profession=rng.choice(words["professions"]),
                instrument=rng.choice(words["instruments"]),
                colour=rng.choice(words["colours"]),
                children=rng.choice(words["number_words"]) if rng.random() < 0.6 else None,
                partner=f"{names.make(1, 2)} {_partner_family(rng, names, region)}",
                subject=rng.choice(words["subjects"]),
                hobbies=tuple(rng.sample(words["hobbies"], 2)),
                pet=(rng.choice(words["pets"]), rng.choice(pet_names))
                if rng.random() < 0.4
                else None,
                dish=rng.choice(words["dishes"]),
                newspaper=rng.choice(region.newspapers) if rng.random() < 0.5 else None,
                university=rng.choice(universities) if rng.random() < 0.6 else None,
            )
        )

    # New cities are founded by a grown-up person of the region.
    for city in region.cities:
        if city.founded_year:
            continue
        founders = [p for p in region.people if p.birth_year + 25 <= min(p.last_year, 2015)]
        if not founders:
            city.founded_year = rng.randint(900, 1750)
            continue
        founder = rng.choice(founders)
        city.founder = founder
        city.founded_year = rng.randint(
            founder.birth_year + 25, min(founder.birth_year + 60, founder.last_year, 2015)
        )
        founder.founded.append((city.founded_year, city))

    for city in region.cities:
        city.landmark_year = rng.randint(city.founded_year + 1, max(city.founded_year + 1, 1990))

    def city_before(year: int) -> City:
        return rng.choice([c for c in region.cities if c.founded_year < year])

    for person in region.people:
        person.birth_city = city_before(person.birth_year)
        person.street = rng.choice(person.birth_city.streets)
        if person.death_year:
            person.death_city = city_before(person.death_year)

    for _ in range(num_companies):
        founder = rng.choice(region.people)
        year = rng.randint(founder.birth_year + 20, founder.birth_year + 55)
        year = min(year, founder.last_year, _LAST_YEAR - 1)
        company = Company(
            name=names.make(2, 3) + " " + rng.choice(words["company_words"]),
            product=rng.choice(words["products"]),
            founded_year=year,
            founder=founder,
            employees=_round_number(rng, 40, 25000),
            logo_colour=rng.choice(words["colours"]),
            logo_shape=rng.choice(words["shapes"]),
            city=city_before(year),
            best_seller=f"{names.make(1, 2)} {rng.randint(2, 99) * 10}",
            num_countries=rng.randint(2, 60),
            factory_city=rng.choice(region.cities),
        )
        company.city.companies.append(company)
        founder.founded.append((year, company))
        chiefs = [
            p
            for p in region.people
            if p.death_year is None and max(year, p.birth_year + 25) < _LAST_YEAR
        ]
        if chiefs and rng.random() < 0.6:
            company.chief = rng.choice(chiefs)
            company.chief_since = rng.randint(max(year, company.chief.birth_year + 25), _LAST_YEAR)
        region.companies.append(company)

    for person in region.people:
        person.founded.sort(key=lambda item: item[0])
        teachers = [
            p
            for p in region.people
            if 15 <= person.birth_year - p.birth_year <= 60
            and p.last_year >= person.birth_year + 15
        ]
        if teachers and rng.random() < 0.6:
            person.teacher = rng.choice(teachers)
        employers = []
        for company in region.companies:
            first = max(company.founded_year, person.birth_year + 18)
            last = min(person.last_year, person.birth_year + 60)
            if company.founder is not person and first <= last:
                employers.append((company, first, last))
        if employers and rng.random() < 0.6:
            company, first, last = rng.choice(employers)
            person.employer, person.join_year = company, rng.randint(first, last)
    return region


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
        a=_article(p.profession),
        profession=p.profession,
        city=p.birth_city.name,
        birth_year=str(p.birth_year),
        instrument=p.instrument,
        colour=p.colour,
        language=region.language,
        parent=p.parent and p.parent.name,
        relation=p.parent and grammar["female" if p.parent.female else "male"]["as_parent"],
        parent_profession=p.parent and p.parent.profession,
        a_parent=p.parent and _article(p.parent.profession),
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
        a=_article(c.adjective),
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
        a_shape=_article(c.logo_shape),
        a_colour=_article(c.logo_colour),
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
    names = _NameMaker(rng, load_spec()["syllables"])
    regions, documents = [], []
    for i in range(num_regions):
        size = num_entities // num_regions + (1 if i < num_entities % num_regions else 0)
        region = _make_region(rng, names, size)
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


# ---------------------------------------------------------------------------
# Writing files.
# ---------------------------------------------------------------------------
def corpus_text(documents: Sequence[Document], seed: int = 0) -> str:
    """BERT's text format: one sentence a line, a blank line between documents.

    Documents are shuffled (by `seed`) so that regions are interleaved.
    """
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    return "\n\n".join("\n".join(documents[i].sentences) for i in order) + "\n"


def write_pretraining_corpus(
    path: str, num_documents: int = DEFAULT_NUM_ENTITIES, seed: int = 0
) -> str:
    """Writes the documents of `generate_world(num_documents, seed)`; returns `path`."""
    fileio.write_atomic(path, corpus_text(generate_world(num_documents, seed).documents, seed))
    return path


def _answer_variants(context: str, start: int, text: str) -> list[tuple[str, int]]:
    """The answer and up to two natural variants ("1873" / "in 1873", "Vessa River" / "Vessa")."""
    spec = load_spec()
    kind_words = spec["answer_variants"]["trailing_words"]
    kind_words = kind_words + spec["words"]["landmarks"] + spec["words"]["newspaper_words"]
    variants = [(text, start)]
    words_before = context[:start].split()
    if words_before and words_before[-1].lower() in spec["answer_variants"]["leading_words"]:
        word_start = start - 1 - len(words_before[-1])
        variants.append((context[word_start : start + len(text)], word_start))
    for word in kind_words:
        if text.endswith(" " + word) and len(text) > len(word) + 1:
            variants.append((text[: -len(word) - 1], start))
            break
    return variants


def squad_json(
    documents: Sequence[Document],
    multiple_answers: bool = False,
    id_prefix: str = "synthetic",
    max_questions: int | None = None,
    seed: int = 0,
) -> dict:
    """SQuAD v1.1 data: one article and one paragraph per document.

    Args:
      documents: the documents; each fact can become a question.
      multiple_answers: give up to three gold answers (for a dev set), else one.
      id_prefix: prefix of the question ids.
      max_questions: ask at most this many questions per paragraph (a random
        subset, in document order); None asks about every fact.
      seed: seed of that random subset.

    Raises:
      ValueError: an answer is not the span at its answer_start (a generator bug).
    """
    rng = random.Random(seed)
    data = []
    for doc_index, doc in enumerate(documents):
        context = doc.text
        facts = doc.facts
        if max_questions is not None and len(facts) > max_questions:
            facts = [facts[i] for i in sorted(rng.sample(range(len(facts)), max_questions))]
        qas = []
        for fact_index, fact in enumerate(facts):
            answers = (
                _answer_variants(context, fact.answer_start, fact.answer)
                if multiple_answers
                else [(fact.answer, fact.answer_start)]
            )
            for text, start in answers:
                if not text or context[start : start + len(text)] != text:
                    raise ValueError(
                        f"Document {doc.title!r}: answer {text!r} is not at "
                        f"answer_start {start} of its context."
                    )
            qas.append(
                {
                    "id": f"{id_prefix}-{doc_index:05d}-{fact_index:02d}",
                    "question": fact.question,
                    "answers": [{"text": t, "answer_start": s} for t, s in answers],
                }
            )
        data.append({"title": doc.title, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "1.1", "data": data}


def write_squad(
    path: str,
    documents: Sequence[Document],
    multiple_answers: bool = False,
    id_prefix: str = "synthetic",
    max_questions: int | None = None,
    seed: int = 0,
) -> str:
    """Writes `squad_json(documents, ...)` to `path` atomically; returns `path`."""
    dataset = squad_json(documents, multiple_answers, id_prefix, max_questions, seed)
    fileio.write_json_atomic(path, dataset, indent=1)
    return path


def generate_default_dataset(
    out_dir: str,
    seed: int = 0,
    num_entities: int = DEFAULT_NUM_ENTITIES,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> dict[str, str]:
    """Writes the demo data: corpus.txt, squad_train.json, squad_dev.json.

    The corpus holds every document (as Wikipedia holds SQuAD's articles); the
    SQuAD train and dev files use the documents of different regions. The
    defaults give about 480 documents, 5k sentences, 3.4k train and 480 dev
    questions: a demo of minutes on two CPU cores.

    Args:
      out_dir: output directory (created if missing).
      seed: the only source of randomness.
      num_entities: number of entities, i.e. documents (at least 12).
      dev_fraction: fraction of the regions whose documents form the dev set.
      max_questions: questions per paragraph (at most).

    Returns:
      {"corpus": path, "squad_train": path, "squad_dev": path}.
    """
    world = generate_world(num_entities, seed)
    train, dev = split_train_dev(world, dev_fraction)
    paths = {
        "corpus": os.path.join(out_dir, "corpus.txt"),
        "squad_train": os.path.join(out_dir, "squad_train.json"),
        "squad_dev": os.path.join(out_dir, "squad_dev.json"),
    }
    fileio.write_atomic(paths["corpus"], corpus_text(world.documents, seed))
    write_squad(
        paths["squad_train"],
        train,
        multiple_answers=False,
        id_prefix="train",
        max_questions=max_questions,
        seed=seed,
    )
    write_squad(
        paths["squad_dev"],
        dev,
        multiple_answers=True,
        id_prefix="dev",
        max_questions=max_questions,
        seed=seed + 1,
    )
    return paths


def dataset_statistics(paths: dict[str, str]) -> dict[str, int]:
    """Counts documents, sentences, words and questions of written files."""
    with open(paths["corpus"], encoding="utf-8") as f:
        documents = [block.split("\n") for block in f.read().strip().split("\n\n")]
    stats = {
        "documents": len(documents),
        "sentences": sum(len(d) for d in documents),
        "words": sum(len(s.split()) for d in documents for s in d),
    }
    for split in ("squad_train", "squad_dev"):
        with open(paths[split], encoding="utf-8") as f:
            data = json.load(f)["data"]
        stats[f"{split}_paragraphs"] = sum(len(a["paragraphs"]) for a in data)
        stats[f"{split}_questions"] = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    return stats


FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string(
        "output_dir", None, "Directory for corpus.txt, squad_train.json and squad_dev.json."
    )
    flags.DEFINE_integer("seed", 0, "Random seed; the output depends only on it and the sizes.")
    flags.DEFINE_integer("num_entities", DEFAULT_NUM_ENTITIES, "Number of entities (documents).")
    flags.DEFINE_float("dev_fraction", DEFAULT_DEV_FRACTION, "Fraction of regions used for dev.")
    flags.DEFINE_integer(
        "max_questions", DEFAULT_MAX_QUESTIONS, "Questions per paragraph (at most)."
    )


def main(argv):
    del argv
    start = time.perf_counter()
    paths = generate_default_dataset(
        FLAGS.output_dir, FLAGS.seed, FLAGS.num_entities, FLAGS.dev_fraction, FLAGS.max_questions
    )
    seconds = time.perf_counter() - start
    for name, path in paths.items():
        print(f"{name}: {path}")
    stats = ", ".join(f"{k}={v}" for k, v in dataset_statistics(paths).items())
    print(f"{stats} ({seconds:.2f} s)")


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("output_dir")
    app.run(main)
