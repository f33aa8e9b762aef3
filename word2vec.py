from elmo_lm.commands.word2vec import main

if __name__ == "__main__":
    main()
