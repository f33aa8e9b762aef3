from elmo_lm.commands.evaluate import main

if __name__ == "__main__":
    main()
