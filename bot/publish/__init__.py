"""Where finished work goes: the Publisher protocol and the offline storybook."""
