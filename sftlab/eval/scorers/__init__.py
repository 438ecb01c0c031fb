"""Scorers turn (response text, reference) into a `Score`. They know nothing about backends or Lightning."""
