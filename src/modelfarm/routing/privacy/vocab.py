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
