"""kerbtrace.context"""
