"""
The API dialects llmedge speaks, as codecs of one internal representation.

A dialect (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages)
decodes a request into a L{conversation.Conversation} and encodes a
L{reply.Reply}, or a stream of L{reply} events, back into its own wire
format; a provider that speaks another dialect encodes the conversation in
its own. So a front end and a provider never meet directly: adding a
dialect is one codec, not one converter per pair.
"""
