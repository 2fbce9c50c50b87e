"""The contracts every stage shares, at the bottom of the import graph: the types that cross stage boundaries."""
