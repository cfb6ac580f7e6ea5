from digest.cli.entry import main

main()
