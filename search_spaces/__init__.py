"""The paretonas SDK: describe a search space in Python and build its networks."""

from search_spaces.base import Architecture, InputSpec, SearchSpace
from search_spaces.choices import Categorical, Choice, IntRange
from search_spaces.errors import ParetonasError, SearchSpaceError, UnknownNameError
from search_spaces.loading import SPACES, create_space, register_space

__all__ = [
    "SPACES",
    "Architecture",
    "Categorical",
    "Choice",
    "InputSpec",
    "IntRange",
    "ParetonasError",
    "SearchSpace",
    "SearchSpaceError",
    "UnknownNameError",
    "create_space",
    "register_space",
]
