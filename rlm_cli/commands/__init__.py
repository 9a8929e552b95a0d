"""One module per ``rlm`` subcommand. Importing any of them must not import litellm."""
