"""RALIS (Casanova et al., ICLR 2020): a DQN that learns which regions to label.

Building blocks so far: region and candidate descriptors, the query network, and the DQN update.
Agent training and the test-phase policy are not implemented yet (issue 4).
"""
