from elmo_lm.commands.probe import main

if __name__ == "__main__":
    main()
