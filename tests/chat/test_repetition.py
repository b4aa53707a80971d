"""The repetition guard that ends looping answers."""

from chat import repetition

LOOP = (
    "The answer is: [6] 31 March of the next year. The passage is: [7] 31 March of the next year. "
    "The passage is: [7] 31 March of the next year. The passage is: [7] 31 March of the next year. "
)


def test_a_phrase_repeated_three_times_is_a_loop_and_what_came_before_is_kept():
    cut = repetition.loop_start(LOOP)
    assert cut is not None
    assert repetition.trim_to_sentence(LOOP[:cut]) == "The answer is: [6] 31 March of the next year."


def test_a_short_phrase_repeated_many_times_is_a_loop():
    text = "Descale it. " + "Ha " * 40
    assert repetition.trim_to_sentence(text[: repetition.loop_start(text)]) == "Descale it."


def test_ordinary_answers_are_not_loops_even_when_words_recur():
    answer = (
        "The warranty lasts three years [2]. It covers the pump [2]. It covers the heating element [2]. "
        "Descaling every 40 days keeps the warranty valid [1]. Descaling takes twelve minutes [1]."
    )
    assert all(repetition.loop_start(answer[:end]) is None for end in range(len(answer) + 1))


def test_trimming_keeps_a_single_unfinished_sentence():
    assert repetition.trim_to_sentence("Every 40 days") == "Every 40 days"
    assert repetition.trim_to_sentence("Every 40 days. And then the") == "Every 40 days."
