"""The raw event contract and its vectorized parser."""
