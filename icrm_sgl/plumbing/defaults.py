"""The defaults several layers share, each stated once: the engines, the shot sampler, the
programs and the settings all read them from here."""

#: The seed of the engine's sampling and of shot sampling, unless one is given.
SEED = 42

#: Shots shown before the example.
NUM_SHOTS = 3

#: Tokens each text field of a verdict may take, unless the judge or the call sets less.
FIELD_TOKENS = 128
