"""Word lists for telling names from other capitalised words. Plain data: imports nothing heavy."""

from __future__ import annotations

# Capitalised for another reason: sentence words, days, months, titles of groups, brands.
# fmt: off
NOT_NAME_WORDS = frozenset(
    [
        "The", "A", "An", "This", "That", "These", "Those", "My", "Our", "Your", "His", "Her", "Their",
        "Its", "We", "I", "You", "He", "She", "They", "It", "Me", "Us", "Him", "Them", "Who", "What",
        "When", "Where", "Why", "How", "Which", "Please", "Thanks", "Thank", "Hi", "Hello", "Dear",
        "Hey", "Yes", "No", "Not", "None", "All", "Everyone", "Team", "Sir", "Madam", "Customer",
        "Support", "Sales", "Service", "Services", "Admin", "Staff", "Dept", "Department", "And", "Or",
        "But", "If", "So", "Then", "Also", "Just", "Today", "Tomorrow", "Yesterday", "Monday",
        "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February",
        "March", "April", "June", "July", "August", "September", "October", "November", "December",
        "Mom", "Mum", "Dad", "Google", "Microsoft", "Apple", "Amazon", "Python", "Java", "Excel",
        "Word", "Slack", "Zoom", "Teams", "Outlook", "Gmail", "Github", "GitHub", "Docker", "Linux",
        "Windows", "Android", "Django", "Flask", "React", "Jenkins", "Siri", "Alexa", "Copilot",
        "ChatGPT", "Redis", "Postgres", "Kafka", "Jupyter", "Pandas", "Numpy", "Kubernetes", "Nginx",
        "Ubuntu", "Debian", "Fedora", "Terraform", "Ansible", "Grafana", "Kibana", "Hadoop", "Airflow",
        "Celery", "Jira", "Figma", "Notion", "Heroku", "Vercel", "Laravel", "Kotlin", "Haskell",
        "Street", "Road", "Avenue", "Inc", "Ltd", "LLC", "Corp", "Company", "University", "College",
        "School", "Hospital", "Bank",
    ]
)
# Titles and particles: part of a name, but alone they say nothing about who ("Dr", "van").
TITLES_AND_PARTICLES = frozenset(
    [
        "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "herr", "frau", "mme", "mlle",
        "sr", "sra", "srta", "van", "von", "der", "den", "de", "da", "di", "del", "della", "dos", "du",
        "la", "le", "al", "el", "bin", "ibn", "ben", "jr", "ii", "iii",
    ]
)
# fmt: on


def is_title_or_particle(word: str) -> bool:
    return word.rstrip(".").lower() in TITLES_AND_PARTICLES


def is_name_word_stop(value: str) -> bool:
    """A one-word "name" that is capitalised for another reason (a brand, a weekday)."""
    return value in NOT_NAME_WORDS


# Words that open a sentence for grammar's sake: function words and the imperatives of prompts.
# Lower-case; only a sentence's first word is looked up here. Words that are also common given
# names ("Will", "May", "Bill", "Mark", "Grant", "Drew", "Sue") are left out on purpose: a
# sentence opening with one of them still goes through NER.
_OPENERS = """
    a about above across after afterwards again against all almost along already although always am
    among an and another any anyone anything anyway are around as at be because been before being
    below beside besides between beyond both but by can cannot could did do does doing done down
    during each either else even ever every everyone everything first for from further had has have
    having he her here hers herself him himself his how however i if in indeed instead into is it its
    itself just last least less let many me meanwhile might more moreover most mostly much must my
    myself neither never nevertheless next no nobody none nor not nothing now of off often on once one
    only or other others otherwise our ours ourselves out over overall perhaps please quite rather
    really second she should since so some someone something sometimes soon still such than that the
    their theirs them themselves then there therefore these they third this those though through thus
    to today together tomorrow too under unless until up upon us usually very was we were what
    whatever when whenever where whereas wherever whether which while who whoever whom whose why with
    within without would yes yet you your yours yourself yourselves
    add analyse analyze answer apply assume build calculate check choose classify compare compute
    consider convert create define describe design determine draft edit estimate evaluate explain
    extract find fix generate give help identify imagine implement improve include keep list look make
    note outline plan prepare provide read recommend refactor remember remove rephrase rewrite review
    show simplify solve sort suggest summarise summarize take tell translate try use verify write
"""
SENTENCE_OPENERS = frozenset(_OPENERS.split())


def is_sentence_opener(word: str) -> bool:
    """A sentence's first word that is capitalised only because it opens the sentence."""
    return word.lower() in SENTENCE_OPENERS
