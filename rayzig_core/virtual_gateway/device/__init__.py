"""The gateway's application, as on the device's MCU (PROTOCOL.md §3, §5 to §7, §10, §12).

Accounts, authentication, the replay cache, request handlers, links and the state it keeps.
"""
