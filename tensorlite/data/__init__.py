"""Data sets: the tutorials' toy problems, Iris (shipped), and preprocessing helpers."""

from tensorlite.data.iris import SPECIES, load_iris
from tensorlite.data.preprocessing import Normalizer, stratified_split
from tensorlite.data.toy import GATES, addition, circles, logic_gate

__all__ = ["GATES", "SPECIES", "Normalizer", "addition", "circles", "load_iris", "logic_gate", "stratified_split"]
