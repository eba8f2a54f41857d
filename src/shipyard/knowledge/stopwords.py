"""English function and question words, shared by sentence scoring and keyword search."""

from __future__ import annotations

# Function words and question words: matching them says nothing about relevance.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom whose why will with would you your yours yourself
    yourselves many much may might must shall upon whether within without called name named
    kind type one ones s t
    """.split()  # noqa: SIM905 - a word list reads better as text
)
