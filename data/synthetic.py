# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""A small invented world: the demo's pretraining corpus and SQuAD data.

Everything is generated here, so the demo needs no download. The world has a
few countries ("regions"); each region has people, cities, companies and
rivers with invented but pronounceable names (built from syllables, so that
WordPiece has to learn sub-words) and facts that refer to one another inside
the region: a city was founded in some year by a person of the region, whose
own article says that he or she founded it; a river flows through cities whose
articles name it; a company has its headquarters in a city; and so on.

Every entity gets one document: an introduction first, then its facts in a
fixed order, with a few templates per fact and pronouns for the subject. A
masked LM can learn co-reference, numbers and the same fact seen in several
documents; next-sentence prediction is learnable because sentences are
coherent and ordered.

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
import json
import os
import random
import string
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags

DEFAULT_NUM_ENTITIES = 480
DEFAULT_DEV_FRACTION = 0.125
DEFAULT_MAX_QUESTIONS = 8  # per paragraph
# Documents per region: large enough for cross-references, small enough that
# the default world has several regions to split between train and dev.
_DOCUMENTS_PER_REGION = 60
_MIN_DOCUMENTS_PER_REGION = 6
_LAST_YEAR = 2024

# ---------------------------------------------------------------------------
# Word lists. Names are invented; the rest is plain English.
# ---------------------------------------------------------------------------
_ONSETS = ("b bl br d dr f fl g gr h k kl kr l m n p pr r s sk st t tr v z th sh").split()
_VOWELS = "a e i o u a e i o ae ai ei ou".split()
_INNER_CODAS = ("", "", "", "n", "r", "l", "s", "m")
_FINAL_CODAS = ("", "", "n", "r", "l", "s", "m", "k", "rn", "nd", "st", "th")
_FEMALE_ENDINGS = ("a", "ia", "ine", "elle", "ys")
_MALE_ENDINGS = ("o", "an", "ric", "us", "em")
_CITY_ENDINGS = ("ton", "mar", "holm", "grad", "via", "dor", "heim", "wick")
_REGION_ENDINGS = {"ia": "ian", "ora": "oran", "and": "andic", "esh": "eshi", "ana": "anese"}
_COMPANY_WORDS = (
    "Works",
    "Company",
    "Group",
    "Industries",
    "Brothers",
    "Holdings",
    "Mills",
    "Trading",
)

_PROFESSIONS = (
    "painter",
    "architect",
    "engineer",
    "poet",
    "sailor",
    "merchant",
    "carpenter",
    "astronomer",
    "physician",
    "teacher",
    "baker",
    "weaver",
    "goldsmith",
    "historian",
    "botanist",
    "lawyer",
    "journalist",
    "chemist",
    "sculptor",
    "novelist",
    "farmer",
    "mapmaker",
    "composer",
    "banker",
    "surgeon",
    "inventor",
    "photographer",
    "geologist",
    "brewer",
    "potter",
    "actor",
    "singer",
    "dancer",
    "judge",
    "mathematician",
    "clockmaker",
    "explorer",
    "printer",
    "gardener",
    "shipbuilder",
)
_INSTRUMENTS = (
    "violin",
    "cello",
    "flute",
    "piano",
    "harp",
    "trumpet",
    "clarinet",
    "guitar",
    "drums",
    "oboe",
    "accordion",
    "viola",
    "bassoon",
    "trombone",
    "lute",
    "organ",
    "banjo",
    "saxophone",
    "mandolin",
    "horn",
    "harmonica",
    "double bass",
    "tuba",
    "zither",
)
_COLOURS = (
    "red",
    "blue",
    "green",
    "yellow",
    "orange",
    "purple",
    "grey",
    "black",
    "white",
    "brown",
    "pink",
    "violet",
    "silver",
    "gold",
    "crimson",
    "turquoise",
    "amber",
    "ivory",
    "navy blue",
    "olive green",
)
_SHAPES = (
    "circle",
    "star",
    "square",
    "triangle",
    "diamond",
    "crown",
    "bird",
    "tree",
    "ship",
    "wheel",
    "anchor",
    "key",
    "bell",
    "lion",
    "horse",
)
_PRODUCTS = (
    "glass",
    "cheese",
    "woollen cloth",
    "pottery",
    "clocks",
    "paper",
    "furniture",
    "bicycles",
    "soap",
    "candles",
    "rope",
    "shoes",
    "tea",
    "chocolate",
    "wine",
    "bread",
    "tools",
    "maps",
    "musical instruments",
    "sails",
    "carpets",
    "silk",
    "leather bags",
    "lamps",
    "bells",
    "salt",
    "olive oil",
    "honey",
    "toys",
    "steel",
    "radios",
    "boats",
    "books",
)
_FISH = (
    "trout",
    "salmon",
    "eels",
    "pike",
    "carp",
    "perch",
    "catfish",
    "sturgeon",
    "bream",
    "crayfish",
)
_LANDMARKS = (
    "Tower",
    "Bridge",
    "Church",
    "Gate",
    "Hall",
    "Palace",
    "Market",
    "Library",
    "Theatre",
    "Lighthouse",
)
_SUBJECTS = (
    "law",
    "medicine",
    "history",
    "chemistry",
    "physics",
    "music",
    "painting",
    "architecture",
    "engineering",
    "botany",
    "geology",
    "philosophy",
    "mathematics",
    "astronomy",
    "economics",
    "languages",
    "theology",
    "agriculture",
    "navigation",
    "literature",
    "sculpture",
    "forestry",
    "pharmacy",
    "zoology",
    "accounting",
)
_HOBBIES = (
    "chess",
    "fishing",
    "sailing",
    "gardening",
    "cycling",
    "swimming",
    "hiking",
    "cooking",
    "knitting",
    "dancing",
    "archery",
    "rowing",
    "skating",
    "birdwatching",
    "woodcarving",
    "embroidery",
    "climbing",
    "riding",
    "poetry",
    "card games",
    "beekeeping",
    "pottery",
    "calligraphy",
    "stargazing",
    "kite flying",
)
_PETS = (
    "dog",
    "cat",
    "parrot",
    "horse",
    "goat",
    "tortoise",
    "rabbit",
    "donkey",
    "canary",
    "pony",
    "ferret",
    "goose",
    "owl",
    "hedgehog",
)
_DISHES = (
    "fish soup",
    "lamb stew",
    "onion pie",
    "roast duck",
    "barley porridge",
    "cabbage rolls",
    "plum cake",
    "mushroom pie",
    "bean soup",
    "apple pancakes",
    "smoked eel",
    "pepper stew",
    "honey bread",
    "cheese dumplings",
    "pork sausages",
    "rice pudding",
    "walnut tart",
    "baked trout",
    "potato salad",
    "lentil soup",
    "goat cheese",
    "cherry pie",
    "grilled sardines",
    "beetroot soup",
)
_CITY_ADJECTIVES = (
    "quiet",
    "busy",
    "old",
    "hilly",
    "windy",
    "small",
    "large",
    "pleasant",
    "crowded",
    "sleepy",
    "wealthy",
    "poor",
    "green",
    "rainy",
    "sunny",
    "historic",
    "modern",
    "lively",
    "peaceful",
    "prosperous",
    "industrial",
    "walled",
    "colourful",
    "ancient",
)
_CITY_KINDS = ("city", "town", "port", "market town", "river town")
_SUMMERS = ("hot", "warm", "mild", "dry", "humid", "short", "long", "pleasant")
_WINTERS = ("cold", "snowy", "wet", "windy", "mild", "freezing", "dark", "grey")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CLUB_WORDS = (
    "Rovers",
    "United",
    "Athletic",
    "Wanderers",
    "Albion",
    "Rangers",
    "Harriers",
    "Olympic",
)
_TREES = (
    "willow",
    "alder",
    "poplar",
    "oak",
    "ash",
    "birch",
    "elm",
    "chestnut",
    "plane",
    "beech",
    "linden",
    "maple",
    "pine",
    "cypress",
    "walnut",
)
_CARGOES = (
    "timber",
    "coal",
    "grain",
    "salt",
    "wool",
    "stone",
    "wine",
    "iron ore",
    "cotton",
    "sugar",
    "potatoes",
    "cattle",
    "oil",
    "sand",
)
_ANIMALS = (
    "bear",
    "wolf",
    "eagle",
    "deer",
    "fox",
    "lynx",
    "swan",
    "stork",
    "owl",
    "otter",
    "badger",
    "falcon",
    "elk",
    "heron",
    "boar",
    "beaver",
    "crane",
)
_SPORTS = (
    "football",
    "rowing",
    "wrestling",
    "cycling",
    "tennis",
    "handball",
    "skiing",
    "fencing",
    "basketball",
    "volleyball",
    "cricket",
    "hockey",
)
_NEWSPAPER_WORDS = (
    "Herald",
    "Gazette",
    "Times",
    "Courier",
    "Post",
    "Chronicle",
    "Observer",
    "Messenger",
)
_DIRECTIONS = ("north", "south", "east", "west", "centre")
_NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven")


# ---------------------------------------------------------------------------
# Entities.
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Person:
    first: str
    last: str
    female: bool
    birth_year: int
    death_year: Optional[int]
    profession: str
    instrument: str
    colour: str
    children: Optional[str]
    partner: str
    subject: str
    hobbies: Tuple[str, str]
    pet: Optional[Tuple[str, str]]  # (animal, name)
    dish: str
    newspaper: Optional[str] = None
    street: str = ""
    parent: Optional["Person"] = None
    university: Optional["City"] = None
    birth_city: "City" = None
    death_city: Optional["City"] = None
    teacher: Optional["Person"] = None
    employer: Optional["Company"] = None
    join_year: Optional[int] = None
    founded: List[Tuple[int, object]] = dataclasses.field(default_factory=list)

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
    founder: Optional[Person] = None
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
    streets: List[str] = dataclasses.field(default_factory=list)
    companies: List["Company"] = dataclasses.field(default_factory=list)


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
    factory_city: Optional[City] = None
    city: City = None
    chief: Optional[Person] = None
    chief_since: Optional[int] = None


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
    cities: List[City] = dataclasses.field(default_factory=list)


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
    people: List[Person]
    cities: List[City]
    companies: List[Company]
    rivers: List[River]
    mountains: List[str] = dataclasses.field(default_factory=list)
    newspapers: List[str] = dataclasses.field(default_factory=list)


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
    sentences: List[str]
    facts: List[Fact]

    @property
    def text(self) -> str:
        """The document as one paragraph (the SQuAD context)."""
        return " ".join(self.sentences)


@dataclasses.dataclass
class World:
    regions: List[Region]
    documents: List[Document]  # in region order; each region's region document first


def _fill(template: str, values: Dict[str, str]) -> Tuple[str, Dict[str, Tuple[int, int]]]:
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


class _DocumentWriter:
    """Builds a document sentence by sentence, recording where answers are."""

    def __init__(self, rng: random.Random, title: str, kind: str, region: str):
        self._rng = rng
        self._document = Document(title, kind, region, [], [])
        self._length = 0

    def say(
        self,
        templates: Sequence[str],
        questions: Optional[Dict[str, Sequence[str]]] = None,
        **values: str,
    ) -> None:
        """Adds one sentence from a random template; asks about its fields.

        Args:
          templates: sentence templates; `{field}` is replaced by `values[field]`.
          questions: field -> question paraphrases (formatted with `values`). A
            question is asked only when the chosen template states its field.
          **values: the template fields.
        """
        text, spans = _fill(self._rng.choice(templates), values)
        text = text[0].upper() + text[1:]  # A sentence may start with "he" or "the".
        offset = self._length + (1 if self._document.sentences else 0)
        self._document.sentences.append(text)
        self._length = offset + len(text)
        for field, paraphrases in (questions or {}).items():
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

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._used = set()

    def _syllables(self, count: int) -> str:
        rng = self._rng
        word = ""
        for i in range(count):
            onset = "" if i == 0 and rng.random() < 0.2 else rng.choice(_ONSETS)
            coda = rng.choice(_FINAL_CODAS if i == count - 1 else _INNER_CODAS)
            word += onset + rng.choice(_VOWELS) + coda
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
    rest = num_documents - 1  # One document is about the region itself.
    num_cities = max(2, round(rest * 0.27))
    num_companies = max(1, round(rest * 0.2))
    num_rivers = max(1, round(rest * 0.13))
    num_people = rest - num_cities - num_companies - num_rivers

    ending = rng.choice(sorted(_REGION_ENDINGS))
    name = names.make(1, 2, (ending,))
    language = name[: -len(ending)] + _REGION_ENDINGS[ending]
    while not names.reserve(language):
        name = names.make(1, 2, (ending,))
        language = name[: -len(ending)] + _REGION_ENDINGS[ending]
    region = Region(
        name=name,
        language=language,
        currency=names.make(1, 2),
        sea=names.make(2, 3) + " Sea",
        dish=rng.choice(_DISHES),
        animal=rng.choice(_ANIMALS),
        sport=rng.choice(_SPORTS),
        people=[],
        cities=[],
        companies=[],
        rivers=[],
    )

    # Shared names, each mentioned in several documents.
    region.mountains = ["Mount " + names.make(2, 3) for _ in range(3)]
    region.newspapers = [f"{names.make(2, 3)} {word}" for word in rng.sample(_NEWSPAPER_WORDS, 2)]
    pet_names = [names.make(1, 2) for _ in range(8)]

    # Rivers: the first is the longest; the second (if any) is its tributary.
    lengths = sorted((rng.randint(40, 2400) for _ in range(num_rivers)), reverse=True)
    for length in lengths:
        region.rivers.append(
            River(
                name=names.make(2, 3) + " River",
                length_km=length,
                mountain=rng.choice(region.mountains),
                fish=rng.choice(_FISH),
                bridge=names.make(2, 3) + " Bridge",
                tree=rng.choice(_TREES),
                cargo=rng.choice(_CARGOES),
                sea=region.sea if rng.random() < 0.7 else names.make(2, 3) + " Sea",
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
            name=names.make(1, 3, _CITY_ENDINGS if rng.random() < 0.5 else ("",)),
            direction=rng.choice(_DIRECTIONS),
            founded_year=rng.randint(900, 1750) if old else 0,
            population=_round_number(rng, 1200, 950000),
            known_for=rng.choice(_PRODUCTS),
            is_capital=i == 0,
            km_to_capital=0 if i == 0 else rng.randint(5, 600),
            landmark=f"{names.make(2, 3)} {rng.choice(_LANDMARKS)}",
            adjective=rng.choice(_CITY_ADJECTIVES),
            kind=rng.choice(_CITY_KINDS),
            summer=rng.choice(_SUMMERS),
            winter=rng.choice(_WINTERS),
            market_day=rng.choice(_WEEKDAYS),
            streets=[names.make(1, 3) + " Street" for _ in range(3)],
        )
        if rng.random() < 0.8:
            city.river = rng.choice(region.rivers)
            city.river.cities.append(city)
        region.cities.append(city)
    for city, club_word in zip(region.cities, rng.sample(_CLUB_WORDS * 4, len(region.cities))):
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
                first=names.make(1, 2, _FEMALE_ENDINGS if female else _MALE_ENDINGS),
                last=parent.last if parent else names.make(1, 3),
                parent=parent,
                female=female,
                birth_year=birth_year,
                death_year=death_year,
                profession=rng.choice(_PROFESSIONS),
                instrument=rng.choice(_INSTRUMENTS),
                colour=rng.choice(_COLOURS),
                children=rng.choice(_NUMBER_WORDS) if rng.random() < 0.6 else None,
                partner=f"{names.make(1, 2)} {_partner_family(rng, names, region)}",
                subject=rng.choice(_SUBJECTS),
                hobbies=tuple(rng.sample(_HOBBIES, 2)),
                pet=(rng.choice(_PETS), rng.choice(pet_names)) if rng.random() < 0.4 else None,
                dish=rng.choice(_DISHES),
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
            name=f"{names.make(2, 3)} {rng.choice(_COMPANY_WORDS)}",
            product=rng.choice(_PRODUCTS),
            founded_year=year,
            founder=founder,
            employees=_round_number(rng, 40, 25000),
            logo_colour=rng.choice(_COLOURS),
            logo_shape=rng.choice(_SHAPES),
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
# Documents.
# ---------------------------------------------------------------------------
def _person_document(rng: random.Random, region: Region, p: Person) -> Document:
    alive = p.death_year is None
    v = dict(
        name=p.name,
        first=p.first,
        last=p.last,
        pron="she" if p.female else "he",
        poss="her" if p.female else "his",
        be="is" if alive else "was",
        does="does" if alive else "did",
        has="has" if alive else "had",
        plays="plays" if alive else "played",
        lives="lives" if alive else "lived",
        lived="has lived" if alive else "lived",
        speaks="speaks" if alive else "spoke",
        a=_article(p.profession),
        profession=p.profession,
        city=p.birth_city.name,
        birth_year=str(p.birth_year),
        instrument=p.instrument,
        colour=p.colour,
        language=region.language,
    )
    doc = _DocumentWriter(rng, p.name, "person", region.name)
    doc.say(
        [
            "{name} {be} {a} {profession} from {city}.",
            "{name} {be} {a} {profession} who {lives} in {city}.",
            "{name}, born in {city}, {be} {a} {profession}.",
        ],
        {
            "profession": [
                "What {be} {name}'s profession?",
                "What {does} {name} do for a living?",
                "What kind of work {does} {name} do?",
            ],
            "city": [
                "Which city {be} {name} from?",
                "Where {does} {name} come from?",
                "In which city {be} {name} born?",
            ],
        },
        **v,
    )
    doc.say(
        [
            "{pron} was born in {birth_year}.",
            "{first} was born in {birth_year}.",
            "{last} was born in the year {birth_year}.",
        ],
        {
            "birth_year": [
                "When was {name} born?",
                "In what year was {name} born?",
                "What year was {name} born in?",
            ]
        },
        **v,
    )
    if p.parent:
        doc.say(
            [
                "{poss} {relation} {parent} was {a_parent} {parent_profession}.",
                "{first} was the {child} of {parent}.",
            ],
            {"parent": ["Who {be} {name}'s {relation}?", "Who was the {relation} of {name}?"]},
            relation="mother" if p.parent.female else "father",
            parent=p.parent.name,
            parent_profession=p.parent.profession,
            child="daughter" if p.female else "son",
            a_parent=_article(p.parent.profession),
            **v,
        )
    if p.university:
        doc.say(
            [
                "{pron} studied {subject} at the {university}.",
                "At the {university}, {first} studied {subject}.",
            ],
            {
                "subject": ["What did {name} study?", "Which subject did {name} study?"],
                "university": ["Where did {name} study {subject}?"],
            },
            subject=p.subject,
            university=f"University of {p.university.name}",
            **v,
        )
    if p.teacher:
        doc.say(
            [
                "As a young {profession}, {pron} studied under {teacher}.",
                "{pron} learned the trade from {teacher}.",
                "{last} was a student of {teacher}.",
            ],
            {
                "teacher": [
                    "Who taught {name}?",
                    "Under whom did {name} study?",
                    "Who was {name}'s teacher?",
                ]
            },
            teacher=p.teacher.name,
            **v,
        )
    # Jobs and foundings, in the order they happened.
    events = [(year, thing) for year, thing in p.founded]
    if p.employer:
        events.append((p.join_year, None))
    for year, thing in sorted(events, key=lambda event: event[0]):
        if thing is None:
            doc.say(
                [
                    "In {join_year} {pron} joined {company}.",
                    "{pron} worked for {company} from {join_year}.",
                    "{last} took a job at {company} in {join_year}.",
                ],
                {
                    "company": ["Which company did {name} work for?", "Where did {name} work?"],
                    "join_year": [
                        "When did {name} join {company}?",
                        "In what year did {name} start working for {company}?",
                    ],
                },
                company=p.employer.name,
                join_year=str(year),
                **v,
            )
        elif isinstance(thing, City):
            doc.say(
                [
                    "In {year} {pron} founded the city of {thing}.",
                    "{last} founded the town of {thing} in {year}.",
                ],
                {"thing": ["Which city did {name} found in {year}?"]},
                year=str(year),
                thing=thing.name,
                **v,
            )
        else:
            doc.say(
                [
                    "In {year} {pron} started the company {thing}.",
                    "{last} founded {thing} in {year}.",
                ],
                {"thing": ["Which company did {name} found in {year}?"]},
                year=str(year),
                thing=thing.name,
                **v,
            )
    doc.say(
        [
            "{pron} {plays} the {instrument} in a small band.",
            "{last} {be} also known for playing the {instrument}.",
            "In {poss} spare time {pron} {plays} the {instrument}.",
        ],
        {
            "instrument": [
                "What instrument {does} {name} play?",
                "Which instrument {does} {name} play?",
            ]
        },
        **v,
    )
    doc.say(
        ["{poss} favourite colour {be} {colour}.", "{last}'s favourite colour {be} {colour}."],
        {
            "colour": [
                "What {be} {name}'s favourite colour?",
                "Which colour {does} {name} like best?",
            ]
        },
        **v,
    )
    doc.say(
        [
            "{pron} {enjoys} {hobby} and {hobby2}.",
            "In {poss} free time {last} {enjoys} {hobby} and {hobby2}.",
        ],
        enjoys="enjoys" if alive else "enjoyed",
        hobby=p.hobbies[0],
        hobby2=p.hobbies[1],
        **v,
    )
    if p.pet:
        doc.say(
            ["{pron} {has} a {pet} called {pet_name}.", "{last} kept a {pet} named {pet_name}."],
            {
                "pet_name": ["What {be} the name of {name}'s {pet}?"],
                "pet": ["What animal {does} {name} keep as a pet?"],
            },
            pet=p.pet[0],
            pet_name=p.pet[1],
            **v,
        )
    doc.say(
        ["{poss} favourite dish {be} {dish}.", "{first} {likes} {dish} more than any other food."],
        {"dish": ["What {be} {name}'s favourite dish?", "Which food {does} {name} like best?"]},
        likes="likes" if alive else "liked",
        dish=p.dish,
        **v,
    )
    if p.children:
        doc.say(
            [
                "{pron} {has} {children} children with {partner}.",
                "{first} and {partner} had {children} children.",
            ],
            {
                "children": ["How many children {does} {name} have?"],
                "partner": [
                    "Who {be} the partner of {name}?",
                    "With whom {does} {name} have children?",
                ],
            },
            children=p.children,
            partner=p.partner,
            **v,
        )
    doc.say(
        ["For many years {pron} {lived} on {street}.", "{poss} house {be} on {street}."],
        {"street": ["On which street {does} {name} live?", "Where {be} {name}'s house?"]},
        street=p.street,
        **v,
    )
    if p.newspaper:
        doc.say(
            [
                "Every morning {pron} {reads} the {newspaper}.",
                "{first} {be} a loyal reader of the {newspaper}.",
            ],
            {"newspaper": ["Which newspaper {does} {name} read?"]},
            reads="reads" if alive else "read",
            newspaper=p.newspaper,
            **v,
        )
    if rng.random() < 0.5:
        doc.say(["Like most people in {city}, {pron} {speaks} {language}."], **v)
    if p.death_year:
        doc.say(
            [
                "{pron} died in {death_city} in {death_year}.",
                "{last} died in {death_year} in {death_city}.",
            ],
            {
                "death_year": ["When did {name} die?", "In what year did {name} die?"],
                "death_city": ["Where did {name} die?", "In which city did {name} die?"],
            },
            death_year=str(p.death_year),
            death_city=p.death_city.name,
            **v,
        )
    return doc.finish()


def _city_document(rng: random.Random, region: Region, c: City) -> Document:
    v = dict(
        name=c.name,
        region=region.name,
        direction=c.direction,
        adjective=c.adjective,
        kind=c.kind,
        a=_article(c.adjective),
        year=str(c.founded_year),
        population=f"{c.population:,}",
        product=c.known_for,
    )
    doc = _DocumentWriter(rng, c.name, "city", region.name)
    doc.say(
        [
            "{name} is {a} {adjective} {kind} in the {direction} of {region}.",
            "{name} is {a} {adjective} {kind} in {region}, in the {direction} of the country.",
        ],
        {
            "region": ["In which country is {name}?", "Which country is {name} in?"],
            "direction": ["In which part of {region} is {name}?"],
        },
        **v,
    )
    if c.is_capital:
        doc.say(
            ["{name} is the capital of {region}.", "It is the capital of {region}."],
            {"name": ["What is the capital of {region}?"]},
            **v,
        )
    else:
        doc.say(
            [
                "{name} lies {distance} from {capital}, the capital.",
                "The capital, {capital}, is {distance} away from {name}.",
            ],
            {
                "distance": [
                    "How far is {name} from {capital}?",
                    "How far is it from {name} to {capital}?",
                ]
            },
            distance=f"{c.km_to_capital} kilometres",
            capital=region.cities[0].name,
            **v,
        )
    if c.river:
        doc.say(
            [
                "It lies on the {river}.",
                "The {river} flows through {name}.",
                "{name} was built on the banks of the {river}.",
            ],
            {"river": ["Which river flows through {name}?", "On which river does {name} lie?"]},
            river=c.river.name,
            **v,
        )
    founded = {"year": ["When was {name} founded?", "In what year was {name} founded?"]}
    if c.founder:
        founded["founder"] = [
            "Who founded {name}?",
            "Who was the founder of {name}?",
            "By whom was {name} founded?",
        ]
        doc.say(
            [
                "{name} was founded in {year} by {founder}.",
                "It was founded by {founder} in {year}.",
                "{founder} founded {name} in {year}.",
            ],
            founded,
            founder=c.founder.name,
            **v,
        )
    else:
        doc.say(["{name} was founded in {year}.", "It was first settled in {year}."], founded, **v)
    doc.say(
        [
            "Its population is about {population}.",
            "About {population} people live in {name}.",
            "{name} has a population of roughly {population}.",
        ],
        {"population": ["What is the population of {name}?", "How many people live in {name}?"]},
        **v,
    )
    doc.say(
        ["The city is known for its {product}.", "{name} is famous for its {product}."],
        {"product": ["What is {name} known for?", "What is {name} famous for?"]},
        **v,
    )
    doc.say(
        [
            "Summers in {name} are {summer} and winters are {winter}.",
            "The city has {summer} summers and {winter} winters.",
        ],
        {
            "winter": ["What are winters like in {name}?"],
            "summer": ["What are summers like in {name}?"],
        },
        summer=c.summer,
        winter=c.winter,
        **v,
    )
    doc.say(
        [
            "Its main street is {street}, which meets {street2} and {street3}.",
            "The main street of {name} is {street}; {street2} and {street3} start there.",
        ],
        {"street": ["What is the main street of {name}?"]},
        street=c.streets[0],
        street2=c.streets[1],
        street3=c.streets[2],
        **v,
    )
    doc.say(
        [
            "A market is held in {name} every {day}.",
            "Every {day} there is a market in the main square of {name}.",
        ],
        {"day": ["On which day is there a market in {name}?"]},
        day=c.market_day,
        **v,
    )
    doc.say(
        ["The local football club is {club}.", "Football fans in {name} support {club}."],
        {"club": ["What is the football club of {name}?", "Which football club is from {name}?"]},
        club=c.club,
        **v,
    )
    doc.say(
        [
            "Its oldest building is the {landmark}, built in {landmark_year}.",
            "The {landmark} was built in {landmark_year} and is the oldest building in {name}.",
        ],
        {
            "landmark": ["What is the oldest building in {name}?"],
            "landmark_year": ["When was the {landmark} built?"],
        },
        landmark=c.landmark,
        landmark_year=str(c.landmark_year),
        **v,
    )
    if len(c.companies) == 1:
        doc.say(
            ["{name} is home to {company}.", "The company {company} is based in {name}."],
            {"company": ["Which company is based in {name}?"]},
            company=c.companies[0].name,
            **v,
        )
    elif c.companies:
        names = ", ".join(x.name for x in c.companies[:-1]) + " and " + c.companies[-1].name
        doc.say(["Companies based in {name} include {companies}."], companies=names, **v)
    return doc.finish()


def _company_document(rng: random.Random, region: Region, c: Company) -> Document:
    v = dict(
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
    )
    doc = _DocumentWriter(rng, c.name, "company", region.name)
    made = {"product": ["What does {name} make?", "What kind of goods does {name} produce?"]}
    based = {"city": ["Where is {name} based?", "In which city are the headquarters of {name}?"]}
    if rng.random() < 0.5:
        doc.say(["{name} is a maker of {product} based in {city}."], {**made, **based}, **v)
    else:
        doc.say(
            [
                "{name} is a company that makes {product}.",
                "{name} is a {region} maker of {product}.",
            ],
            made,
            **v,
        )
        doc.say(["Its headquarters are in {city}.", "The company is based in {city}."], based, **v)
    doc.say(
        [
            "It was founded in {year} by {founder}.",
            "{founder} founded the company in {year}.",
            "{name} was started by {founder} in {year}.",
        ],
        {
            "founder": ["Who founded {name}?", "Who started {name}?"],
            "year": ["When was {name} founded?", "In which year was {name} founded?"],
        },
        **v,
    )
    doc.say(
        [
            "{name} employs about {employees} people.",
            "The company has around {employees} employees.",
        ],
        {
            "employees": [
                "How many people does {name} employ?",
                "How many employees does {name} have?",
            ]
        },
        **v,
    )
    doc.say(
        [
            "Its logo is {a_shape} {shape} drawn in {colour}.",
            "The {name} logo shows {a_colour} {colour} {shape}.",
        ],
        {
            "colour": ["What colour is the logo of {name}?"],
            "shape": ["What does the {name} logo show?", "What shape is the {name} logo?"],
        },
        **v,
    )
    doc.say(
        [
            "{name} sells its {product} in {countries} countries.",
            "Its goods are sold in {countries} countries.",
        ],
        {"countries": ["In how many countries does {name} sell its goods?"]},
        countries=str(c.num_countries),
        **v,
    )
    doc.say(
        [
            "Its largest factory is in {factory}.",
            "The company's biggest factory stands in {factory}.",
        ],
        {"factory": ["Where is the largest factory of {name}?"]},
        factory=c.factory_city.name,
        **v,
    )
    doc.say(
        [
            "Its best-known product is the {best_seller}.",
            "The {best_seller} is the company's most famous product.",
        ],
        {"best_seller": ["What is the best-known product of {name}?"]},
        best_seller=c.best_seller,
        **v,
    )
    if c.chief:
        doc.say(
            [
                "Since {since}, the company has been led by {chief}.",
                "{chief} has run {name} since {since}.",
            ],
            {"chief": ["Who leads {name}?", "Who runs {name}?"]},
            since=str(c.chief_since),
            chief=c.chief.name,
            **v,
        )
    return doc.finish()


def _river_document(rng: random.Random, region: Region, r: River) -> Document:
    v = dict(
        name=r.name,
        region=region.name,
        length=f"{r.length_km:,} kilometres",
        mountain=r.mountain,
        sea=r.sea,
        fish=r.fish,
    )
    doc = _DocumentWriter(rng, r.name, "river", region.name)
    doc.say(
        ["The {name} is a river in {region}.", "The {name} flows through {region}."],
        {"region": ["In which country is the {name}?"]},
        **v,
    )
    doc.say(
        [
            "It is {length} long.",
            "The river is about {length} long.",
            "The {name} has a length of {length}.",
        ],
        {"length": ["How long is the {name}?", "What is the length of the {name}?"]},
        **v,
    )
    doc.say(
        ["It rises on {mountain}.", "Its source is on {mountain}."],
        {"mountain": ["Where does the {name} rise?", "Where is the source of the {name}?"]},
        **v,
    )
    if r.tributary_of:
        doc.say(
            ["It is a tributary of the {main}.", "It joins the {main} before reaching the sea."],
            {"main": ["Which river does the {name} flow into?"]},
            main=r.tributary_of.name,
            **v,
        )
    else:
        doc.say(
            ["It flows into the {sea}.", "The {name} ends in the {sea}."],
            {"sea": ["Into which sea does the {name} flow?", "Where does the {name} end?"]},
            **v,
        )
    if r.tributary:
        doc.say(
            ["Its largest tributary is the {tributary}."],
            {"tributary": ["What is the largest tributary of the {name}?"]},
            tributary=r.tributary.name,
            **v,
        )
    doc.say(
        [
            "The oldest bridge over the river is the {bridge}.",
            "The {bridge} is the oldest bridge over the {name}.",
        ],
        {"bridge": ["What is the oldest bridge over the {name}?"]},
        bridge=r.bridge,
        **v,
    )
    if len(r.cities) == 1:
        doc.say(
            ["On its way it passes through {city}.", "The city of {city} lies on its banks."],
            {"city": ["Which city lies on the {name}?"]},
            city=r.cities[0].name,
            **v,
        )
    elif r.cities:
        cities = ", ".join(c.name for c in r.cities[:-1]) + " and " + r.cities[-1].name
        doc.say(["On its way it passes through {cities}."], cities=cities, **v)
    doc.say(
        ["Many {tree} trees grow along its banks.", "Its banks are lined with {tree} trees."],
        {"tree": ["Which trees grow along the {name}?"]},
        tree=r.tree,
        **v,
    )
    doc.say(
        [
            "Boats carry {cargo} down the river.",
            "For centuries boats have carried {cargo} on the {name}.",
        ],
        {"cargo": ["What do boats carry on the {name}?"]},
        cargo=r.cargo,
        **v,
    )
    doc.say(
        ["The river is known for its {fish}.", "Fishermen come to the {name} for its {fish}."],
        {"fish": ["What is the {name} known for?", "Which fish is the {name} known for?"]},
        **v,
    )
    return doc.finish()


def _region_document(rng: random.Random, region: Region) -> Document:
    largest = max(region.cities, key=lambda c: c.population)
    employer = max(region.companies, key=lambda c: c.employees)
    v = dict(
        name=region.name,
        sea=region.sea,
        capital=region.cities[0].name,
        language=region.language,
        river=region.rivers[0].name,
        count=str(len(region.cities)),
        largest=largest.name,
        employer=employer.name,
        currency=region.currency,
    )
    doc = _DocumentWriter(rng, region.name, "region", region.name)
    doc.say(
        [
            "{name} is a country on the coast of the {sea}.",
            "{name} is a small country beside the {sea}.",
        ],
        {"sea": ["Which sea borders {name}?", "On which sea is {name}?"]},
        **v,
    )
    doc.say(
        ["Its capital city is {capital}.", "The capital of {name} is {capital}."],
        {"capital": ["What is the capital of {name}?", "Which city is the capital of {name}?"]},
        **v,
    )
    doc.say(
        ["The people of {name} speak {language}.", "Most people in {name} speak {language}."],
        {
            "language": [
                "What language is spoken in {name}?",
                "Which language do the people of {name} speak?",
            ]
        },
        **v,
    )
    doc.say(
        [
            "The country has {count} cities, and the largest is {largest}.",
            "Of its {count} cities, {largest} is the largest.",
        ],
        {"largest": ["What is the largest city in {name}?"]},
        **v,
    )
    doc.say(
        ["The longest river in {name} is the {river}."],
        {"river": ["What is the longest river in {name}?"]},
        **v,
    )
    doc.say(
        ["The largest employer in the country is {employer}."],
        {"employer": ["What is the largest employer in {name}?"]},
        **v,
    )
    doc.say(
        ["The highest mountain in {name} is {mountain}."],
        {"mountain": ["What is the highest mountain in {name}?"]},
        mountain=region.mountains[0],
        **v,
    )
    doc.say(
        ["Its main newspapers are the {paper} and the {paper2}."],
        paper=region.newspapers[0],
        paper2=region.newspapers[1],
        **v,
    )
    doc.say(
        [
            "The national dish of {name} is {dish}.",
            "Every family in {name} knows how to make {dish}.",
        ],
        {"dish": ["What is the national dish of {name}?"]},
        dish=region.dish,
        **v,
    )
    doc.say(
        ["Its national animal is the {animal}.", "The {animal} is the national animal of {name}."],
        {"animal": ["What is the national animal of {name}?"]},
        animal=region.animal,
        **v,
    )
    doc.say(
        ["The most popular sport in {name} is {sport}."],
        {"sport": ["What is the most popular sport in {name}?"]},
        sport=region.sport,
        **v,
    )
    doc.say(
        ["People in {name} pay with the {currency}.", "Its currency is the {currency}."],
        {"currency": ["What is the currency of {name}?"]},
        **v,
    )
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
    names = _NameMaker(rng)
    regions, documents = [], []
    for i in range(num_regions):
        size = num_entities // num_regions + (1 if i < num_entities % num_regions else 0)
        region = _make_region(rng, names, size)
        regions.append(region)
        documents.append(_region_document(rng, region))
        documents.extend(_person_document(rng, region, p) for p in region.people)
        documents.extend(_city_document(rng, region, c) for c in region.cities)
        documents.extend(_company_document(rng, region, c) for c in region.companies)
        documents.extend(_river_document(rng, region, r) for r in region.rivers)
    return World(regions, documents)


def split_train_dev(
    world: World, dev_fraction: float = DEFAULT_DEV_FRACTION
) -> Tuple[List[Document], List[Document]]:
    """Splits the documents by region: train and dev share no entity."""
    num_dev = min(len(world.regions) - 1, max(1, round(len(world.regions) * dev_fraction)))
    dev_regions = {r.name for r in world.regions[len(world.regions) - num_dev :]}
    train = [d for d in world.documents if d.region not in dev_regions]
    dev = [d for d in world.documents if d.region in dev_regions]
    return train, dev


# ---------------------------------------------------------------------------
# Writing files.
# ---------------------------------------------------------------------------
def _write_atomically(path: str, text: str) -> None:
    """Writes UTF-8 text to a temporary file beside `path`, then renames it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(temp_path, path)
    except BaseException:
        os.unlink(temp_path)
        raise


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
    _write_atomically(path, corpus_text(generate_world(num_documents, seed).documents, seed))
    return path


_LEADING_WORDS = ("in", "about", "around", "roughly", "the", "since")
_TRAILING_WORDS = (" River", " Sea", " Street", " Bridge", " kilometres") + tuple(
    " " + word for word in _LANDMARKS + _NEWSPAPER_WORDS
)


def _answer_variants(context: str, start: int, text: str) -> List[Tuple[str, int]]:
    """The answer and up to two natural variants ("1873" / "in 1873", "Vessa River" / "Vessa")."""
    variants = [(text, start)]
    words_before = context[:start].split()
    if words_before and words_before[-1].lower() in _LEADING_WORDS:
        word_start = start - 1 - len(words_before[-1])
        variants.append((context[word_start : start + len(text)], word_start))
    for word in _TRAILING_WORDS:
        if text.endswith(word) and len(text) > len(word):
            variants.append((text[: -len(word)], start))
            break
    return variants


def squad_json(
    documents: Sequence[Document],
    multiple_answers: bool = False,
    id_prefix: str = "synthetic",
    max_questions: Optional[int] = None,
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
    max_questions: Optional[int] = None,
    seed: int = 0,
) -> str:
    """Writes `squad_json(documents, ...)` to `path` atomically; returns `path`."""
    dataset = squad_json(documents, multiple_answers, id_prefix, max_questions, seed)
    _write_atomically(path, json.dumps(dataset, ensure_ascii=False, indent=1) + "\n")
    return path


def generate_default_dataset(
    out_dir: str,
    seed: int = 0,
    num_entities: int = DEFAULT_NUM_ENTITIES,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> Dict[str, str]:
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
    _write_atomically(paths["corpus"], corpus_text(world.documents, seed))
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


def dataset_statistics(paths: Dict[str, str]) -> Dict[str, int]:
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
