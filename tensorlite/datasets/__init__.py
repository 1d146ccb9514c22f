"""Data sets: the tutorials' toy problems, Iris and Tiny Shakespeare (shipped), MNIST (read from
disk or downloaded), transforms and preprocessing helpers."""

from tensorlite.datasets.iris import SPECIES, load_iris
from tensorlite.datasets.mnist import MNIST, MNISTError
from tensorlite.datasets.preprocessing import Normalizer, stratified_split
from tensorlite.datasets.text import CharTokenizer, TextData, load_shakespeare
from tensorlite.datasets.toy import GATES, addition, circles, logic_gate
from tensorlite.datasets.transforms import Normalize
from tensorlite.utils.files import DataFileError

__all__ = ["GATES", "MNIST", "SPECIES", "CharTokenizer", "DataFileError", "MNISTError", "Normalize", "Normalizer",
           "TextData", "addition", "circles", "load_iris", "load_shakespeare", "logic_gate", "stratified_split"]
