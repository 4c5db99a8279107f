"""kerbtrace.exchanges"""
