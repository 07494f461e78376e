from rechecker.cli import main

main()
