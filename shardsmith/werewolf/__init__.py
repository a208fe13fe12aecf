"""Evaluation items derived from one Werewolf game's rows (``decisions``, ``role_inference``).

Built per game in ``staging.games`` (a partition re-run rebuilds exactly its own items) and read by
``validation.integrity``; kept out of ``views`` (the release-time medical views) so that neither
package pulls the other in.
"""
