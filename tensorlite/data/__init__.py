"""Data sets: the tutorials' toy problems, Iris and Tiny Shakespeare (shipped), MNIST (read from
disk or downloaded), transforms and preprocessing helpers."""

from tensorlite.data.iris import SPECIES, load_iris
from tensorlite.data.mnist import MNIST, MNISTError
from tensorlite.data.preprocessing import Normalizer, stratified_split
from tensorlite.data.text import CharTokenizer, TextData, load_shakespeare
from tensorlite.data.toy import GATES, addition, circles, logic_gate
from tensorlite.data.transforms import Normalize

__all__ = ["GATES", "MNIST", "SPECIES", "CharTokenizer", "MNISTError", "Normalize", "Normalizer", "TextData",
           "addition", "circles", "load_iris", "load_shakespeare", "logic_gate", "stratified_split"]
