"""Writes the LAMB paper's Table 4 batch sweep as experiment configs (configs/lamb_table4/).

python -m bert.recipes
"""

from bert.training import recipes


def main() -> None:
    for path in recipes.write_table4_configs():
        print(path)


if __name__ == "__main__":
    main()
