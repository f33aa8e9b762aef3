"""The biLM as plain single-device nn.Modules: the character CNN, the LSTM, the biLM, the
softmax and its log-uniform sampler, and the scalar mix of layers.
"""
