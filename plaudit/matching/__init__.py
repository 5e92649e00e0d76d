"""Matching reviews to the couples who wrote them, and linking a couple's reviews.

- ``plaudit.matching.names``: display names against couples' names (accents,
  order, case, initials, nicknames).
- ``plaudit.matching.scoring``: the confidence score and the decision to
  confirm automatically; pure.
- ``plaudit.matching.store``: candidates and confirmations in the journal's
  ``review_matches`` table; a confirmation stops the couple's follow-ups.
- ``plaudit.matching.links``: one couple's reviews across platforms.
"""
