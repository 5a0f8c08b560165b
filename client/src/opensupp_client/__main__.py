from opensupp_client.cli import main

main()
