"""kerbtrace.reports"""
