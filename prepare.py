from elmo_lm.commands.prepare import main

if __name__ == "__main__":
    main()
