"""The verbs without root: ADD, DEL, CHECK, GC and STATUS over the fake world of tests/doubles."""
