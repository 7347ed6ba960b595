# Trial statistics: runs only when an allocation key is given at analysis time.
# (Being built: issue 7.)
