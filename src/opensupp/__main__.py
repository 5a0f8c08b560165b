from opensupp.cli import main

main()
