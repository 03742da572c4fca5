"""Region-based active learning: labelled state, oracle, acquisition scores and candidate pools."""
