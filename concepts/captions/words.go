package captions

// The word lists the captions are built from. Changing any of them changes
// the corpus: bump Version so that cached covariances are recomputed.

var animals = []string{
	"cat", "kitten", "dog", "puppy", "horse", "pony", "cow", "sheep", "goat", "pig",
	"rabbit", "fox", "wolf", "bear", "deer", "elephant", "giraffe", "zebra", "lion", "tiger",
	"leopard", "monkey", "gorilla", "panda", "koala", "kangaroo", "squirrel", "hedgehog", "owl", "eagle",
	"parrot", "penguin", "duck", "swan", "flamingo", "chicken", "hummingbird", "butterfly", "bee", "dragonfly",
	"frog", "turtle", "lizard", "snake", "crocodile", "dolphin", "whale", "shark", "octopus", "jellyfish",
	"goldfish", "crab", "raccoon", "otter", "beaver", "camel", "llama", "hamster", "mouse", "bat",
}

var objects = []string{
	"teapot", "coffee mug", "wine glass", "vase", "bowl of fruit", "loaf of bread", "birthday cake", "cupcake", "pizza", "sandwich",
	"backpack", "handbag", "suitcase", "umbrella", "hat", "pair of sneakers", "leather boot", "wristwatch", "necklace", "pair of sunglasses",
	"guitar", "violin", "piano", "drum kit", "trumpet", "camera", "laptop", "smartphone", "typewriter", "radio",
	"bicycle", "motorcycle", "car", "vintage car", "bus", "train", "sailboat", "airplane", "hot air balloon", "tractor",
	"armchair", "sofa", "wooden table", "lamp", "bookshelf", "clock", "mirror", "candle", "teddy bear", "toy robot",
	"rubber duck", "kite", "chess board", "globe", "telescope", "lantern", "treasure chest", "sword", "shield", "crown",
	"potted plant", "sunflower", "bouquet of roses", "cactus", "bonsai tree", "pumpkin", "apple", "lemon", "strawberry", "mushroom",
}

var people = []string{
	"woman", "man", "girl", "boy", "old man", "old woman", "child", "baby", "teenager", "couple",
	"astronaut", "knight", "wizard", "pirate", "samurai", "cowboy", "chef", "doctor", "firefighter", "soldier",
	"dancer", "ballerina", "musician", "painter", "scientist", "farmer", "fisherman", "sailor", "king", "queen",
	"princess", "monk", "student", "businessman", "photographer", "surfer", "skateboarder", "climber", "runner", "gardener",
}

var adjectives = []string{
	"small", "large", "tiny", "giant", "fluffy", "shiny", "old", "ancient", "modern", "futuristic",
	"cute", "majestic", "happy", "sleepy", "curious", "angry", "elegant", "rusty", "wooden", "glass",
	"golden", "silver", "ceramic", "plastic", "knitted", "broken", "wet", "dusty", "colorful", "striped",
	"spotted", "furry", "transparent", "glowing", "mechanical", "handmade", "vintage", "retro", "weathered", "polished",
}

var colours = []string{
	"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
	"gray", "teal", "turquoise", "navy", "crimson", "beige", "ivory", "olive", "maroon", "lavender",
	"mint green", "sky blue", "pastel pink", "dark green", "bright yellow", "deep purple", "pale blue", "burnt orange", "charcoal", "cream",
}

var actions = []string{
	"sitting", "standing", "sleeping", "running", "jumping", "walking", "flying", "swimming", "dancing", "reading a book",
	"eating", "drinking tea", "playing", "looking at the camera", "looking out of a window", "lying on the grass", "climbing a tree", "riding a bicycle", "holding an umbrella", "wearing a hat",
	"wearing sunglasses", "playing the guitar", "cooking dinner", "painting a picture", "taking a photo", "waving", "laughing", "smiling", "hiding", "resting",
}

var places = []string{
	"on a beach", "in a forest", "in a desert", "on a mountain top", "in a snowy field", "in a city street", "in a park", "in a garden", "in a kitchen", "in a living room",
	"in a bedroom", "in a library", "in a cafe", "in a restaurant", "at a train station", "in an airport", "on a boat", "underwater", "in space", "on the moon",
	"in a field of flowers", "by a lake", "by a river", "next to a waterfall", "in a cave", "in a castle", "in a temple", "in a market", "on a rooftop", "in a museum",
	"in a classroom", "in an office", "on a farm", "in a barn", "in the jungle", "on a bridge", "in a subway", "at a festival", "in the rain", "in the snow",
	"in tokyo", "in paris", "in new york", "in venice", "in the countryside", "in a small village", "on an island", "in a greenhouse", "in a workshop", "in a studio",
}

var styles = []string{
	"a photo", "a photograph", "a close-up photo", "a black and white photo", "a polaroid photo", "a film photograph", "a studio photo", "a blurry photo", "a watercolor painting", "an oil painting",
	"a pencil sketch", "a charcoal drawing", "an ink drawing", "a digital painting", "a 3d render", "a cartoon", "an anime illustration", "a comic book panel", "a pixel art image", "a low poly render",
	"a children's book illustration", "a vintage poster", "a woodcut print", "a mosaic", "a stained glass window", "a sculpture", "a clay model", "a paper cutout", "a vector illustration", "a concept art painting",
	"an impressionist painting", "a cubist painting", "a pop art print", "an ukiyo-e print", "a renaissance painting", "a surreal painting", "a minimalist illustration", "a line drawing", "a postcard", "a tattoo design",
}

var styleSuffixes = []string{
	"highly detailed", "sharp focus", "soft focus", "4k", "8k", "hdr", "trending on artstation", "award winning", "professional photography", "bokeh",
	"depth of field", "cinematic", "photorealistic", "hyperrealistic", "octane render", "unreal engine", "studio ghibli style", "in the style of van gogh", "in the style of monet", "by a famous artist",
	"matte painting", "concept art", "illustration", "masterpiece", "high resolution", "grainy", "long exposure", "macro", "wide angle", "35mm film",
}

var compositions = []string{
	"close-up", "extreme close-up", "wide shot", "aerial view", "top-down view", "side view", "front view", "portrait", "full body shot", "low angle shot",
	"high angle shot", "over the shoulder shot", "panoramic view", "isometric view", "centered composition", "rule of thirds", "symmetrical composition", "silhouette", "reflection", "macro shot",
}

var lighting = []string{
	"at sunset", "at sunrise", "at night", "at dusk", "at noon", "in golden hour light", "in soft morning light", "under neon lights", "by candlelight", "in moonlight",
	"in fog", "with dramatic lighting", "with studio lighting", "with rim lighting", "in harsh sunlight", "under a cloudy sky", "under a starry sky", "with volumetric light", "backlit", "in the shade",
}

var backgrounds = []string{
	"a white", "a black", "a plain gray", "a blue", "a pastel", "a gradient", "a blurred", "a wooden", "a marble", "a brick wall",
	"a dark", "a green", "a colorful", "a concrete", "a paper", "a checkered", "a red", "a yellow", "a bokeh", "a transparent",
}

var quantities = []string{
	"two", "three", "four", "five", "a group of", "a pair of", "a few", "many", "a family of", "a row of",
}

var products = []string{
	"for sale", "isolated", "product photo", "stock photo", "on display", "in a shop window", "on a shelf", "in its box", "with price tag", "flat lay",
}
