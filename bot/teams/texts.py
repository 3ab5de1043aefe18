"""What the bot says in Teams outside of an answer: help, welcome, and answers to ``stop``."""

from __future__ import annotations

from bot.relay import StopResult

HELP_TEXT = (
    "Ask me a question about your data and I will work it out here — in a channel, mention me: "
    "“@insightbot which regions grew fastest last quarter?”.\n\n"
    "- Follow-up questions in the same chat, or the same channel thread, keep the context; "
    "the suggested questions under an answer ask one with a click.\n"
    "- 👍/👎 under an answer tell us whether it helped.\n"
    "- Press **Stop** on a running answer, or send `stop`, to stop it.\n"
    "- `history` lists your recent questions in this conversation; `help` shows this message."
)

WELCOME_TEXT = "Hi! I answer questions about your data.\n\n" + HELP_TEXT

NOTHING_RUNNING = "Nothing of yours is running here."

STOP_MESSAGES: dict[StopResult, str | None] = {
    StopResult.STOPPING: None,  # the answer card itself turns into "Stopped by …"
    StopResult.ALREADY_STOPPING: "That analysis is already stopping.",
    StopResult.ALREADY_FINISHED: "That analysis has already finished — nothing to stop.",
    StopResult.NOT_ALLOWED: "Only the person who asked can stop this analysis.",
    StopResult.NOT_FOUND: "I could not find that analysis.",
}

TURN_FAILED = "Sorry — something went wrong on my side. Please try again. Reference: {reference}"

# what an old placeholder becomes when its answer had to be posted as a new message
ANSWER_BELOW = "This analysis has finished: the answer is in the message below."

# the first line of a reply to a question asked by clicking a suggested follow-up
ASKED = "{name} asked: {question}"

# the CSV of a cut result (personal chats; bot/teams/files.py)
FILE_EXPIRED = ("That CSV file is no longer available (I keep them for a while after the answer). "
                "Ask the question again to get it.")
FILE_FAILED = "Sorry — the CSV file could not be saved to your OneDrive. Reference: {reference}"
