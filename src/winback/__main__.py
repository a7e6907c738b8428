from winback.cli.app import main

main()
