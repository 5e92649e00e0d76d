"""Personalisation of review requests, and the measurement of what it gains.

* :mod:`~plaudit.personalisation.sendtime`: when to send (pure model).
* :mod:`~plaudit.personalisation.variants`: holdout group and Thompson sampling.
* :mod:`~plaudit.personalisation.channel_choice`: the channel of steps with channel auto.
* :mod:`~plaudit.personalisation.guardrails` and :mod:`~plaudit.personalisation.drafting`:
  optional AI-drafted opening lines and the checks they must pass.
* :mod:`~plaudit.personalisation.store`, :mod:`~plaudit.personalisation.profiles` and
  :mod:`~plaudit.personalisation.lift`: profiles, assignments and outcomes in the
  journal, and the measured lift (:mod:`~plaudit.personalisation.stats` for intervals).
* :mod:`~plaudit.personalisation.service`: what the notifier calls.
* :mod:`~plaudit.personalisation.explain`, :mod:`~plaudit.personalisation.control` and
  :mod:`~plaudit.personalisation.ctl`: ``plaudit ctl personalisation`` and the
  explanation in ``plaudit ctl request show``.
* :mod:`~plaudit.personalisation.checks`: check-config rules.
"""
