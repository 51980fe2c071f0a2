"""``N_()``: marks an English message for the catalogue (``pybabel extract``, see README
"Languages") where it is defined — in modules that know nothing of the web, whose messages
the JSON API, the CLI and the database keep in English. Pages translate them when they show
them (``web.engine_messages``, ``_()`` in web/)."""


def N_(message: str) -> str:
    return message
