"""Views of a run: event sinks that render progress on stderr (plain lines, or the live tree)."""
