"""Who may ask from a Slack Connect channel (bot/slack/membership.py)."""

from bot.slack.membership import Membership, event_team


def test_members_are_in_outsiders_out_unless_their_team_or_our_grid_is_listed() -> None:
    default = Membership.from_setting("")
    assert default.may_ask(user_team=None, home_team="T1")  # nothing named: our own
    assert default.may_ask(user_team="T1", home_team="T1")
    assert not default.may_ask(user_team="T2", home_team="T1")
    assert not default.may_ask(user_team="T2", home_team="T1", home_enterprise="E1")
    listed = Membership.from_setting(" T2 , E1,")
    assert listed.may_ask(user_team="T2", home_team="T1")
    assert not listed.may_ask(user_team="T3", home_team="T1")
    # listing our own Enterprise Grid lets its other workspaces in
    assert listed.may_ask(user_team="T3", home_team="T1", home_enterprise="E1")
    assert not listed.may_ask(user_team="T3", home_team="T1", home_enterprise="E9")


def test_the_askers_team_comes_from_user_team_then_team() -> None:
    assert event_team({"user_team": "T2", "team": "T1"}) == "T2"
    assert event_team({"team": "T1"}) == "T1"
    assert event_team({"team": ["x"]}) is None
