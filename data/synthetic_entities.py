"""The invented world's entities: regions of people, cities, companies and rivers.

`make_region` invents the entities of one region and the links between them (a city's
founder, a river's cities, a company's headquarters, ...), with pronounceable names built
from syllables (`NameMaker`). The word lists and name parts are data, in
`synthetic_world.json` beside this module (`load_spec`).
"""

import dataclasses
import functools
import json
import os
import random
from collections.abc import Sequence
from typing import Any, Optional

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
# The world generator.
# ---------------------------------------------------------------------------
class NameMaker:
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


def article(word: str) -> str:
    """The indefinite article for `word` (the word lists have no "hour" or "unit")."""
    return "an" if word[0] in "aeiou" else "a"


def _round_number(rng: random.Random, low: int, high: int) -> int:
    """A random number with two significant digits, like a rounded statistic."""
    value = rng.randint(low, high)
    scale = 10 ** max(0, len(str(value)) - 2)
    return max(scale, round(value / scale) * scale)


def _partner_family(rng: random.Random, names: NameMaker, region: Region) -> str:
    """A partner's family name: often one of the region's families."""
    if region.people and rng.random() < 0.6:
        return rng.choice(region.people).last
    return names.make(1, 3)


def make_region(rng: random.Random, names: NameMaker, num_documents: int) -> Region:
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
