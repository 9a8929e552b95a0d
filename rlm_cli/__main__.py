from rlm_cli.cli import main

main()
