"""Readable random run names, in MLflow's adjective-noun-number style."""

import random

_ADJECTIVES = (
    "able bold brave bright calm clever crisp daring eager fancy fierce gentle glad grand "
    "happy honest humble jolly keen kind lively lucky merry mighty neat noble polite proud "
    "quick quiet rare rich shy silent smart sunny swift tidy upbeat vivid warm wise witty zesty"
).split()
_NOUNS = (
    "ant bass bear bee bird cat carp colt crab crow deer dog dove duck eel elk finch fox frog "
    "goat gull hare hawk hen horse jay koala lark lion lynx mink mole moth mouse newt owl ox "
    "panda pig quail ram ray seal shark sheep snail squid stork swan tiger toad trout wolf wren yak"
).split()


def random_run_name() -> str:
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randint(0, 999)}"
