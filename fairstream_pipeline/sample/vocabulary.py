"""The words the sample catalog builds its names and titles from (``catalog.py``): people, bands,
labels, publishers, songs, and the noise acts and their tracks. Drawn by index: changing a list
changes the sample's bytes."""

FIRST_NAMES = (
    "Ada Alba Alex Amara Anouk Bruno Camille Chiara Dario Elif Elsa Emil Ezra Farah Felix Greta "
    "Hugo Ines Ivo Jonas Julia Kai Lars Lea Leon Lina Luca Maya Milan Nadia Nils Noa Omar Paula "
    "Rafael Rosa Sami Sofia Tiago Vera Yara Zoe"
).split()
LAST_NAMES = (
    "Almeida Bauer Berg Blanc Costa Dahl Duarte Eriksson Fabre Ferrari Fischer Garcia Greco Hansen "
    "Jansen Klein Lambert Lindqvist Lopez Marino Martin Moreau Muller Navarro Nilsson Novak Oliveira "
    "Petit Ramos Ricci Roux Santos Schmidt Silva Smit Torres Vidal Visser Weber Wolf"
).split()
ADJECTIVES = (
    "Amber Blue Broken Bright Silent Golden Electric Velvet Wild Hidden Distant Paper Neon Quiet "
    "Crimson Hollow Endless Lunar Northern Restless Secret Slow Solar Static Sweet Wandering "
    "Young Frozen Burning Gentle Lost Midnight Open Rising Salt Silver Summer Winter Liquid Free"
).split()
NOUNS = (
    "Echo River Light Heart Dream Ocean Signal Garden Mirror Storm Shadow Fire Window Horizon "
    "Letter Machine Island Season Harbor Engine Planet Forest Canyon Meadow Comet Lantern "
    "Station Tide Wave Bridge City Flower Runner Sparrow Voice Thunder Valley Orbit Diamond Road"
).split()
NOISE_ACT_FIRST = ("Sleep", "Deep Sleep", "Calm", "Rain", "White Noise", "Nature", "Baby Sleep", "Dreamy", "Focus")
NOISE_ACT_LAST = ("Sounds", "Lab", "Collective", "Machine", "Factory", "Therapy", "Project", "Studio", "Works")
NOISE_SOUNDS = tuple(
    "White Noise, Brown Noise, Pink Noise, Heavy Rain, Gentle Rain, Rain on a Tent, Ocean Waves, Thunderstorm, "
    "Box Fan, Airplane Cabin, Forest Stream, Crackling Fire, Washing Machine, Hair Dryer, Night Crickets, "
    "Wind in the Pines".split(", ")
)
NOISE_SUFFIXES = (" for Sleep", " (Loopable)", " for Babies", " - Deep Focus", " (No Fade)", " for Studying", "")
TITLE_SUFFIXES = ("", " (Live)", " (Acoustic)", " (Remix)", " - Radio Edit")
TITLE_SUFFIX_WEIGHTS = (0.88, 0.03, 0.03, 0.04, 0.02)
LABEL_SUFFIXES = ("Records", "Music", "Recordings", "Sound", "Audio")
PUBLISHER_SUFFIXES = ("Publishing", "Songs", "Editions", "Music Publishing")
