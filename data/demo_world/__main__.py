"""`python -m data.demo_world --out=DIR --preset=test|demo --seed=N [--workers=K]`."""
import sys

from data.demo_world.generate import main

if __name__ == "__main__":
  sys.exit(main())
