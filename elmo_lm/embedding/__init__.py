"""What ELMo users embed with: ``Elmo`` (layers mixed, concatenated or the top one), the
token cache, and static word vectors to append.
"""
