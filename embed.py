from elmo_lm.commands.embed import main

if __name__ == "__main__":
    main()
