"""English sentences for the synthetic corpus: a written reference and the words a TTS reads.

A sentence is a template filled from lexicons. Numeric slots carry two forms: the written one
("5:30 pm", "$12.50", "March 3rd") goes into the reference, the verbalized one ("five thirty
pm") is what the TTS is fed, so no voice ever has to guess how digits are read. Everything
is drawn from one `random.Random(seed)`: the same seed gives the same sentences.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from faker.providers.address.en_US import Provider as _Address
from faker.providers.job.en_US import Provider as _Job
from faker.providers.lorem.en_US import Provider as _Lorem
from faker.providers.person.en_US import Provider as _Person
from num2words import num2words

from audiodistill.data.spoken import spoken_clock

# faker entries with digits, commas or brackets would read badly
_PLAIN = re.compile(r"[A-Za-z][A-Za-z ]*")

FIRST_NAMES = tuple(_Person.first_names)
LAST_NAMES = tuple(_Person.last_names)
NOUNS = _Lorem.parts_of_speech["noun"]
VERBS = tuple(v for v in _Lorem.parts_of_speech["verb"] if v not in ("be", "have", "do"))
ADJECTIVES = _Lorem.parts_of_speech["adjective"]
ADVERBS = tuple(a for a in _Lorem.parts_of_speech["adverb"] if a != "not")
JOBS = tuple(j.lower() for j in _Job.jobs if _PLAIN.fullmatch(j))
STATES = _Address.states
COUNTRIES = tuple(c for c in _Address.countries if _PLAIN.fullmatch(c))
CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Dublin", "Vienna", "Prague",
    "Warsaw", "Athens", "Oslo", "Stockholm", "Helsinki", "Copenhagen", "Amsterdam", "Brussels",
    "Zurich", "Geneva", "Edinburgh", "Manchester", "Liverpool", "Glasgow", "Cardiff", "Toronto",
    "Vancouver", "Montreal", "Chicago", "Boston", "Seattle", "Denver", "Austin", "Dallas",
    "Houston", "Phoenix", "Atlanta", "Miami", "Portland", "Nashville", "New York", "Los Angeles",
    "San Francisco", "San Diego", "Philadelphia", "Detroit", "Tokyo", "Osaka", "Seoul",
    "Beijing", "Shanghai", "Singapore", "Bangkok", "Mumbai", "Delhi", "Sydney", "Melbourne",
    "Auckland", "Cape Town", "Nairobi", "Cairo", "Lagos", "Mexico City", "Lima", "Santiago",
    "Buenos Aires", "Rio de Janeiro", "Istanbul", "Dubai", "Moscow", "Budapest",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ROOMS = ("kitchen", "bedroom", "living room", "hallway", "garage", "office", "bathroom", "attic")
DEVICES = ("lights", "heater", "fan", "radio", "television", "oven", "alarm", "dishwasher")
GENRES = ("jazz", "classical", "rock", "folk", "blues", "country", "reggae", "soul", "piano")
PLURALS = (
    "people", "cars", "books", "tickets", "apples", "chairs", "students", "messages", "boxes",
    "houses", "trees", "birds", "emails", "songs", "photos", "bottles", "pages", "votes",
    "guests", "eggs", "bicycles", "letters", "cookies", "candles", "windows", "horses",
)  # fmt: skip
GROCERIES = ("apples", "eggs", "onions", "lemons", "bananas", "potatoes", "carrots", "bagels")
UNITS = ("minutes", "hours", "seconds")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Slot(NamedTuple):
    written: str  # as a person would type it: digits, symbols
    spoken: str  # as it is read aloud: words only


@dataclass(frozen=True)
class SynthText:
    text: str  # written reference, digits and symbols as a person would type them
    spoken: str  # the same words as read aloud: what the TTS is fed
    kind: str  # which generator made it (number, date, command, ...), for per-kind figures


def say(n: int | float) -> str:
    """A number in words, without the commas num2words puts in large numbers."""
    return num2words(n).replace(",", "")


def ordinal_suffix(day: int) -> str:
    if day % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def digit_string(rng: random.Random, length: int) -> Slot:
    """Codes and numbers read digit by digit ("four eight one")."""
    digits = "".join(str(rng.randrange(10)) for _ in range(length))
    return Slot(digits, " ".join(DIGITS[int(d)] for d in digits))


def cardinal(rng: random.Random, low: int = 2, high: int = 999) -> Slot:
    n = rng.randint(low, high)
    return Slot(f"{n:,}", say(n))


def money(rng: random.Random) -> Slot:
    dollars, cents = rng.randint(1, 499), rng.choice((0, 0, 25, 50, 99, rng.randint(1, 98)))
    unit = "dollar" if dollars == 1 else "dollars"
    if cents == 0:
        return Slot(f"${dollars}", f"{say(dollars)} {unit}")
    return Slot(f"${dollars}.{cents:02d}", f"{say(dollars)} {unit} and {say(cents)} cents")


def percent(rng: random.Random) -> Slot:
    value = rng.choice((rng.randint(1, 99), rng.randint(1, 99) / 2))
    written = f"{value:g}"
    return Slot(f"{written}%", f"{say(value)} percent")


def phone_number(rng: random.Random) -> Slot:
    area, local, line = (digit_string(rng, k) for k in (3, 3, 4))
    written = f"{area.written}-{local.written}-{line.written}"
    return Slot(written, f"{area.spoken}, {local.spoken}, {line.spoken}")


def clock_time(rng: random.Random) -> Slot:
    hour, minute = rng.randint(1, 12), rng.choice((0, 15, 30, 45, rng.randint(1, 59)))
    suffix = rng.choice(("am", "pm", ""))
    spoken = spoken_clock(hour, minute, suffix)
    written = f"{hour}:{minute:02d}"
    if suffix:
        return Slot(f"{written} {suffix}", f"{spoken} {suffix}")
    return Slot(written, spoken)


def calendar_date(rng: random.Random, with_year: bool = False) -> Slot:
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    written = f"{month} {day}{ordinal_suffix(day)}"
    spoken = f"{month} {num2words(day, to='ordinal')}"
    if with_year:
        year = rng.randint(1950, 2035)
        return Slot(f"{written}, {year}", f"{spoken} {num2words(year, to='year')}")
    return Slot(written, spoken)


def lexical_slots(rng: random.Random) -> dict[str, str]:
    """One draw for every word slot a template may use; templates take what they need."""
    return {
        "name": rng.choice(FIRST_NAMES),
        "last": rng.choice(LAST_NAMES),
        "noun": rng.choice(NOUNS),
        "noun2": rng.choice(NOUNS),
        "adj": rng.choice(ADJECTIVES),
        "adv": rng.choice(ADVERBS),
        "verb": rng.choice(VERBS),
        "job": rng.choice(JOBS),
        "city": rng.choice(CITIES),
        "city2": rng.choice(CITIES),
        "state": rng.choice(STATES),
        "country": rng.choice(COUNTRIES),
        "place": rng.choice((rng.choice(CITIES), rng.choice(STATES), rng.choice(COUNTRIES))),
        "weekday": rng.choice(WEEKDAYS),
        "room": rng.choice(ROOMS),
        "plural": rng.choice(PLURALS),
    }


def fill(rng: random.Random, kind: str, templates: tuple[str, ...], **slots: Slot) -> SynthText:
    """Pick a template and format it twice: with written slots, then with spoken ones."""
    template = rng.choice(templates)
    words = lexical_slots(rng)
    written = words | {k: v.written for k, v in slots.items()}
    spoken = words | {k: v.spoken for k, v in slots.items()}
    return SynthText(
        _capitalize(template.format(**written)), _capitalize(template.format(**spoken)), kind
    )


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


NUMBER_TEMPLATES = (
    "There were {n} {plural} at the {noun} fair in {place}.",
    "The {adj} {noun} costs {money} at the shop on the corner.",
    "Prices for {noun} rose by {pct} last year.",
    "About {n} {plural} were sold in {place} on the first day.",
    "{name} paid {money} for a {adj} {noun}.",
    "Your order number is {code}.",
    "The survey found that {pct} of people prefer {noun} to {noun2}.",
    "Room {n} is on the left, next to the {noun} office.",
)


def number_sentence(rng: random.Random) -> SynthText:
    code = digit_string(rng, rng.randint(5, 8))
    return fill(
        rng,
        "number",
        NUMBER_TEMPLATES,
        n=cardinal(rng),
        money=money(rng),
        pct=percent(rng),
        code=code,
    )


PHONE_TEMPLATES = (
    "Call {name} at {phone}.",
    "You can reach the {job} on {phone} after lunch.",
    "My new number is {phone}, so please update your contacts.",
    "The {noun} hotline in {city} is {phone}.",
)


def phone_sentence(rng: random.Random) -> SynthText:
    return fill(rng, "phone", PHONE_TEMPLATES, phone=phone_number(rng))


DATE_TEMPLATES = (
    "The meeting with {name} is on {weekday}, {date}.",
    "{name} {last} was born on {full_date}.",
    "The {noun} festival in {city} starts on {date}.",
    "Please send the {adj} report before {date}.",
    "We moved to {place} on {full_date}.",
    "The office is closed from {date} until the end of the month.",
)


def date_sentence(rng: random.Random) -> SynthText:
    full_date = calendar_date(rng, with_year=True)
    return fill(rng, "date", DATE_TEMPLATES, date=calendar_date(rng), full_date=full_date)


TIME_TEMPLATES = (
    "The train to {city} leaves at {time}.",
    "Meet me outside the {noun} shop at {time}.",
    "The {adj} lecture starts at {time} on {weekday}.",
    "{name} usually gets home at {time}.",
    "Call {name} at {time} on {date}.",
)


def time_sentence(rng: random.Random) -> SynthText:
    return fill(rng, "time", TIME_TEMPLATES, time=clock_time(rng), date=calendar_date(rng))


COMMAND_TEMPLATES = (
    "Set a timer for {n} {unit}.",
    "Remind me to {verb} the {noun} at {time}.",
    "Turn {switch} the {device} in the {room}.",
    "Play some {genre} music in the {room}.",
    "Send a message to {name} saying I will be {n} minutes late.",
    "Add {n} {grocery} to my shopping list.",
    "Set the thermostat to {degrees} degrees.",
    "Wake me up at {time} tomorrow.",
    "Show me the {adj} {noun} photos from {city}.",
    "Please {verb} the {noun} {adv}.",
)


def command_sentence(rng: random.Random) -> SynthText:
    words = {
        "unit": rng.choice(UNITS),
        "switch": rng.choice(("on", "off")),
        "device": rng.choice(DEVICES),
        "genre": rng.choice(GENRES),
        "grocery": rng.choice(GROCERIES),
    }
    return fill(
        rng,
        "command",
        COMMAND_TEMPLATES,
        n=cardinal(rng, 2, 90),
        time=clock_time(rng),
        degrees=cardinal(rng, 15, 30),
        **{k: Slot(v, v) for k, v in words.items()},
    )


QUESTION_TEMPLATES = (
    "What is the weather like in {city} this {weekday}?",
    "Can you {verb} the {adj} {noun} for me?",
    "How far is {city} from {city2}?",
    "Why did {name} {verb} the {noun}?",
    "Is the {noun} still {adj}?",
    "Who is the best {job} in {state}?",
    "When does the {noun} museum open on {weekday}?",
    "Have you ever been to {country}?",
    "Where did {name} leave the {adj} {noun}?",
    "Should we {verb} the {noun} {adv}?",
)


def question_sentence(rng: random.Random) -> SynthText:
    return fill(rng, "question", QUESTION_TEMPLATES)


STATEMENT_TEMPLATES = (
    "{name} said the {noun} was {adv} {adj}.",
    "My neighbour works as a {job} in {place}.",
    "We need to {verb} the {noun} before the {noun2} arrives.",
    "{name} {last} will {verb} the {adj} {noun} next {weekday}.",
    "The {noun} in {city} is {adv} {adj} this time of year.",
    "I think the {adj} {noun} belongs to {name}.",
    "Nobody wanted to {verb} the {noun} after the {noun2}.",
    "{name} {last} has been a {job} for {n} years.",
)


def statement_sentence(rng: random.Random) -> SynthText:
    return fill(rng, "statement", STATEMENT_TEMPLATES, n=cardinal(rng, 2, 40))


SHORT_TEMPLATES = (
    "{verb} the {noun}.",
    "Good morning, {name}.",
    "{adj} {noun}, please.",
    "Call {name}.",
    "Thank you, {name}.",
    "Where is {name}?",
    "Not {adj} enough.",
    "See you {weekday}.",
    "Please call {name} back.",
    "Open the {noun} now.",
)


def short_sentence(rng: random.Random) -> SynthText:
    return fill(rng, "short", SHORT_TEMPLATES)


CLAUSE_TEMPLATES = (
    "{name} wanted to {verb} the {adj} {noun} before {weekday}",
    "the {noun} in {city} was {adv} {adj}",
    "nobody in the {room} knew how to {verb} the {noun}",
    "the {job} from {place} arrived at {time}",
    "we paid {money} for the {adj} {noun}",
    "everyone agreed that the {noun} should be {adj}",
    "{name} {last} kept talking about {noun} and {noun2}",
)
CONNECTIVES = ("and", "but", "because", "so", "while", "although", "after")


def long_sentence(rng: random.Random) -> SynthText:
    """Clauses joined by connectives until 20-30 words; a longer draw is simply redrawn."""
    while True:
        clauses = [_clause(rng)]
        while sum(len(c.written.split()) for c in clauses) < 20:
            link = rng.choice(CONNECTIVES)
            clause = _clause(rng)
            clauses.append(Slot(f"{link} {clause.written}", f"{link} {clause.spoken}"))
        written = ", ".join(c.written for c in clauses) + "."
        spoken = ", ".join(c.spoken for c in clauses) + "."
        if len(written.split()) <= 30:
            return SynthText(_capitalize(written), _capitalize(spoken), "long")


def _clause(rng: random.Random) -> Slot:
    sentence = fill(rng, "clause", CLAUSE_TEMPLATES, time=clock_time(rng), money=money(rng))
    # a clause continues a sentence: only a leading name keeps its capital
    return Slot(_lower_first(sentence.text), _lower_first(sentence.spoken))


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text if first in FIRST_NAMES else text[0].lower() + text[1:]


KINDS: dict[str, tuple[float, Callable[[random.Random], SynthText]]] = {
    "number": (0.12, number_sentence),
    "phone": (0.05, phone_sentence),
    "date": (0.10, date_sentence),
    "time": (0.08, time_sentence),
    "command": (0.15, command_sentence),
    "question": (0.15, question_sentence),
    "statement": (0.15, statement_sentence),
    "short": (0.10, short_sentence),
    "long": (0.10, long_sentence),
}  # kind -> (share of the corpus, generator)


def generate_text(rng: random.Random) -> SynthText:
    """One sentence of a kind drawn by the shares in KINDS."""
    weights = [share for share, _ in KINDS.values()]
    _, make = rng.choices(list(KINDS.values()), weights=weights)[0]
    return make(rng)


def normalized(text: str) -> str:
    """The key two sentences are duplicates by: case and punctuation do not count."""
    return " ".join(re.sub(r"[^a-z0-9$%:' ]+", " ", text.lower()).split())


def generate_texts(n: int, seed: int) -> list[SynthText]:
    """`n` sentences, no two the same after normalization; deterministic for `seed`."""
    rng, seen, texts = random.Random(seed), set(), []
    while len(texts) < n:
        item = generate_text(rng)
        key = normalized(item.text)
        if key not in seen:
            seen.add(key)
            texts.append(item)
    return texts
