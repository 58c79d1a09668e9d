"""The embedded models' shared vocabulary: what a word means, in prose and in pictures.

The writer (local_text) reads a prompt with it and the illustrator (local_scene) reads the story
back with it, so a word the writer puts into a scene is a word the illustrator knows how to draw.
Every concept key is also the name of its drawing (local_sprites / local_scenery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

Color = tuple[int, int, int]


class Category(StrEnum):
    ANIMAL = "animal"
    PERSON = "person"
    ROBOT = "robot"
    THING = "thing"  # an object that can be a story's hero: a teapot, a kite
    SETTING = "setting"  # a whole backdrop
    LANDMARK = "landmark"  # a big building or feature drawn into a backdrop
    PROP = "prop"
    SKY = "sky"  # things drawn in the sky: moon, stars, planets, rainbow
    WEATHER = "weather"
    TIME = "time"


HERO_CATEGORIES = frozenset({Category.ANIMAL, Category.PERSON, Category.ROBOT, Category.THING})


@dataclass(frozen=True)
class Concept:
    key: str
    category: Category
    noun: str  # the English noun the stories use
    words: tuple[str, ...] = ()  # every spelling that means it, in any language (lower case)
    habitat: str | None = None  # the setting it belongs to, when a story needs one
    colors: tuple[str, ...] = ()  # natural colour names (fur, paint), first is the default
    gender: str | None = None  # "she" / "he" for nouns that carry one (queen, king)
    plural: str = ""
    english: tuple[str, ...] = ()  # the spellings a story may reuse as they are

    @property
    def plural_noun(self) -> str:
        return self.plural or pluralize(self.noun)


def _c(
    key: str,
    category: Category,
    words: str,
    *,
    noun: str | None = None,
    habitat: str | None = None,
    colors: str = "",
    gender: str | None = None,
    plural: str = "",
) -> Concept:
    english, _, foreign = words.partition("|")
    spelled = tuple(dict.fromkeys([key, *english.split(), *foreign.split()]))
    return Concept(
        key, category, noun or key, spelled, habitat, tuple(colors.split()), gender, plural, tuple(english.split())
    )


A, P, R, T = Category.ANIMAL, Category.PERSON, Category.ROBOT, Category.THING
S, L, PR, SK, W, TI = Category.SETTING, Category.LANDMARK, Category.PROP, Category.SKY, Category.WEATHER, Category.TIME

CONCEPTS: tuple[Concept, ...] = (
    # animals ---------------------------------------------------------------------------------
    _c("fox", A, "vixen fennec | zorro renard fuchs volpe raposa лиса 狐 きつね キツネ 🦊", habitat="forest",
       colors="russet ginger silver"),
    _c("cat", A, "kitten kitty tomcat | gato gata chatte katze gatto кот кошка 猫 ねこ ネコ 🐱 🐈", habitat="village",
       colors="ginger grey black cream"),
    _c("dog", A, "puppy pup hound | perro chien hund cane собака 犬 いぬ 🐶 🐕", habitat="village",
       colors="tan chestnut cream black"),
    _c("wolf", A, "| lobo loup wölfin волк 狼 🐺", habitat="forest", colors="grey silver charcoal", plural="wolves"),
    _c("bear", A, "| oso ours bär orso медведь 熊 くま 🐻", habitat="forest", colors="brown chocolate honey"),
    _c("polar_bear", A, "", noun="polar bear", habitat="snowland", colors="ivory cream"),
    _c("rabbit", A, "bunny hare | conejo lapin hase kaninchen coniglio кролик заяц 兎 うさぎ ウサギ 🐰 🐇",
       habitat="meadow", colors="cream grey tan"),
    _c("mouse", A, "mice | ratón raton souris maus topo мышь 鼠 ねずみ 🐭", habitat="village",
       colors="grey tan cream", plural="mice"),
    _c("hedgehog", A, "| erizo hérisson igel riccio ёж ハリネズミ 🦔", habitat="garden", colors="chestnut brown"),
    _c("squirrel", A, "| ardilla écureuil eichhörnchen scoiattolo белка リス 🐿", habitat="forest",
       colors="russet ginger grey"),
    _c("deer", A, "fawn stag reindeer | ciervo cerf hirsch cervo олень 鹿 🦌", habitat="forest",
       colors="tan chestnut", plural="deer"),
    _c("horse", A, "pony foal stallion mare | caballo cheval pferd cavallo лошадь 馬 うま 🐴 🐎", habitat="farm",
       colors="chestnut brown grey cream"),
    _c("unicorn", A, "| unicornio licorne einhorn unicorno единорог ユニコーン 🦄", habitat="meadow",
       colors="white lilac"),
    _c("lion", A, "lioness | león lion löwe leone лев ライオン 🦁", habitat="desert", colors="honey tan"),
    _c("tiger", A, "| tigre tiger тигр 虎 とら 🐯 🐅", habitat="jungle", colors="orange"),
    _c("elephant", A, "| elefante éléphant elefant слон 象 ぞう 🐘", habitat="jungle", colors="grey"),
    _c("pig", A, "piglet | cerdo cochon schwein maiale свинья 豚 🐷", habitat="farm", colors="pink"),
    _c("sheep", A, "lamb | oveja mouton schaf pecora овца 羊 🐑", habitat="farm", colors="cream white", plural="sheep"),
    _c("cow", A, "calf | vaca vache kuh mucca корова 牛 🐮", habitat="farm", colors="white"),
    _c("otter", A, "| nutria loutre otter lontra выдра カワウソ 🦦", habitat="river", colors="brown chestnut"),
    _c("raccoon", A, "| mapache waschbär енот アライグマ 🦝", habitat="city", colors="grey"),
    _c("panda", A, "panda | панда パンダ 🐼", habitat="forest", colors="white"),
    _c("camel", A, "| camello chameau kamel cammello верблюд ラクダ 🐫", habitat="desert", colors="tan sand"),
    _c("monkey", A, "ape chimp | mono singe affe scimmia обезьяна 猿 さる 🐒", habitat="jungle", colors="brown"),
    _c("dragon", A, "| dragón dragon drache drago дракон 龍 竜 ドラゴン 🐉 🐲 wyvern", habitat="mountains",
       colors="green crimson purple gold"),
    _c("dinosaur", A, "dino t-rex trex | dinosaurio dinosaure dinosaurier динозавр 恐竜 🦖 🦕", habitat="jungle",
       colors="green olive"),
    _c("owl", A, "owlet | búho buho hibou chouette eule gufo сова 梟 ふくろう 🦉", habitat="forest",
       colors="brown tan"),
    _c("crow", A, "raven rook | cuervo corbeau rabe krähe corvo ворона ворон 烏 からす", habitat="village",
       colors="charcoal black"),
    _c("bird", A, "sparrow robin wren finch songbird blackbird | pájaro pajaro oiseau vogel uccello птица 鳥 とり 🐦",
       habitat="meadow", colors="sky blue yellow red"),
    _c("gull", A, "seagull | gaviota mouette möwe gabbiano чайка カモメ", habitat="coast", colors="white"),
    _c("duck", A, "duckling | pato canard ente anatra утка 鴨 あひる 🦆", habitat="lake", colors="yellow white"),
    _c("goose", A, "gosling | ganso oie gans oca гусь", habitat="lake", colors="white", plural="geese"),
    _c("penguin", A, "| pingüino pinguino manchot pinguin пингвин ペンギン 🐧", habitat="snowland",
       colors="charcoal"),
    _c("parrot", A, "parakeet | loro perroquet papagei pappagallo попугай オウム 🦜", habitat="jungle",
       colors="green red"),
    _c("eagle", A, "hawk falcon | águila aigle adler aquila орёл орел 鷲 🦅", habitat="mountains",
       colors="brown"),
    _c("chicken", A, "hen rooster chick | gallina poule huhn pollo курица 鶏 にわとり 🐔", habitat="farm",
       colors="white russet"),
    _c("whale", A, "| ballena baleine wal balena кит 鯨 くじら 🐋 🐳", habitat="sea", colors="slate blue grey"),
    _c("dolphin", A, "| delfín delfin dauphin delfin delfino дельфин イルカ 🐬", habitat="sea", colors="grey"),
    _c("shark", A, "| tiburón tiburon requin hai squalo акула 鮫 サメ 🦈", habitat="sea", colors="grey"),
    _c("fish", A, "goldfish salmon trout | pez poisson fisch pesce рыба 魚 さかな 🐟 🐠", habitat="underwater",
       colors="orange gold", plural="fish"),
    _c("octopus", A, "squid | pulpo poulpe pieuvre krake polpo осьминог 蛸 タコ 🐙", habitat="underwater",
       colors="coral purple", plural="octopuses"),
    _c("turtle", A, "tortoise | tortuga tortue schildkröte tartaruga черепаха 亀 かめ 🐢", habitat="coast",
       colors="olive green"),
    _c("frog", A, "toad tadpole | rana grenouille frosch лягушка 蛙 かえる 🐸", habitat="swamp", colors="green"),
    _c("snail", A, "slug | caracol escargot schnecke lumaca улитка 蝸牛 かたつむり 🐌", habitat="garden",
       colors="tan"),
    _c("crab", A, "lobster | cangrejo crabe krabbe granchio краб 蟹 かに 🦀", habitat="coast", colors="red"),
    _c("butterfly", A, "moth | mariposa papillon schmetterling farfalla бабочка 蝶 ちょう 🦋", habitat="garden",
       colors="blue orange", plural="butterflies"),
    _c("bee", A, "bumblebee | abeja abeille biene пчела 蜂 はち 🐝", habitat="garden", colors="yellow"),
    _c("bat", A, "bats | murciélago chauve-souris fledermaus pipistrello летучая-мышь コウモリ 🦇", habitat="cave",
       colors="charcoal"),
    _c("snake", A, "serpent | serpiente serpent schlange serpente змея 蛇 へび 🐍", habitat="jungle",
       colors="green"),
    # people ----------------------------------------------------------------------------------
    _c("keeper", P, "warden caretaker guardian", habitat="coast"),
    _c("sailor", P, "fisherman fisher fisherwoman mariner seafarer sailors", habitat="sea"),
    _c("captain", P, "skipper | capitán capitaine kapitän", habitat="sea"),
    _c("pirate", P, "buccaneer corsair | pirata pirat пират 海賊", habitat="sea"),
    _c("knight", P, "squire paladin | caballero chevalier ritter cavaliere рыцарь 騎士", habitat="castle"),
    _c("princess", P, "| princesa prinzessin principessa принцесса 姫", habitat="castle", gender="she",
       plural="princesses"),
    _c("prince", P, "| príncipe prinz principe принц 王子", habitat="castle", gender="he"),
    _c("queen", P, "| reina reine königin regina королева 女王", habitat="castle", gender="she"),
    _c("king", P, "| rey roi könig король 王様", habitat="castle", gender="he"),
    _c("wizard", P, "sorcerer mage magician enchanter | mago magier волшебник 魔法使い 🧙", habitat="castle"),
    _c("witch", P, "sorceress | bruja sorcière hexe strega ведьма 魔女", habitat="forest", gender="she",
       plural="witches"),
    _c("astronaut", P, "cosmonaut spaceman | astronauta astronaute космонавт 宇宙飛行士", habitat="space"),
    _c("explorer", P, "adventurer traveller traveler wanderer voyager | explorador explorateur", habitat="meadow"),
    _c("baker", P, "chef cook | panadero boulanger bäcker", habitat="village"),
    _c("painter", P, "artist illustrator | pintor peintre maler", habitat="village"),
    _c("musician", P, "fiddler piper drummer singer | músico", habitat="city"),
    _c("farmer", P, "shepherd shepherdess gardener | granjero fermier bauer", habitat="farm"),
    _c("detective", P, "sleuth inspector | detektiv", habitat="city"),
    _c("inventor", P, "scientist engineer tinkerer | inventora", habitat="city"),
    _c("girl", P, "daughter sister | niña nina fille mädchen ragazza девочка 少女 女の子 👧", habitat="village",
       gender="she"),
    _c("boy", P, "son brother | niño nino garçon junge ragazzo мальчик 少年 男の子 👦", habitat="village", gender="he"),
    _c("child", P, "kid toddler", habitat="village", plural="children"),
    _c("grandmother", P, "grandma granny nan | abuela grand-mère oma nonna бабушка おばあさん 👵",
       habitat="village", gender="she"),
    _c("grandfather", P, "grandpa grandad granddad | abuelo grand-père opa nonno дедушка おじいさん 👴",
       habitat="village", gender="he"),
    _c("woman", P, "lady | mujer femme frau donna женщина 女", habitat="village", gender="she", plural="women"),
    _c("man", P, "gentleman | hombre homme mann uomo мужчина 男", habitat="village", gender="he", plural="men"),
    _c("teacher", P, "librarian professor | maestra maestro", habitat="library"),
    _c("doctor", P, "nurse healer vet | médico", habitat="village"),
    _c("giant", P, "ogre troll | gigante géant riese великан 巨人", habitat="mountains"),
    _c("ghost", P, "spirit phantom spook | fantasma fantôme gespenst привидение 幽霊 おばけ 👻", habitat="castle"),
    # robots and things that can be heroes ------------------------------------------------------------
    _c("robot", R, "android automaton droid bot cyborg | robota roboter робот ロボット 🤖", habitat="city",
       colors="silver copper teal"),
    _c("teapot", T, "kettle teacup | tetera théière teekanne", habitat="village", colors="blue white"),
    _c("kite", T, "| cometa cerf-volant aquilone 凧", habitat="meadow", colors="red"),
    _c("umbrella", T, "parasol | paraguas parapluie regenschirm ombrello зонт 傘 かさ ☂", habitat="city",
       colors="red yellow"),
    _c("lantern", T, "lamp lamplight candle torch | linterna lanterne laterne lanterna фонарь 提灯 🏮",
       habitat="village", colors="gold"),
    _c("clock", T, "| reloj horloge uhr orologio часы 時計 ⏰", habitat="village",
       colors="gold"),
    _c("balloon", T, "hot-air-balloon airship | globo ballon pallone шар 風船 🎈", habitat="sky", colors="red"),
    _c("boat", T, "sailboat rowboat canoe dinghy | barca barco bateau boot barca лодка 船 ふね ⛵ 🚣",
       habitat="sea", colors="red white"),
    _c("ship", T, "galleon steamship steamer schooner vessel | navire schiff nave корабль 🚢", habitat="sea",
       colors="brown"),
    _c("raft", T, "| balsa radeau floß floss zattera плот いかだ", habitat="river", colors="tan"),
    _c("train", T, "locomotive railway | tren zug treno поезд 電車 汽車 🚂", habitat="meadow", colors="red"),
    _c("rocket", T, "spaceship spacecraft | cohete fusée rakete razzo ракета ロケット 🚀", habitat="space",
       colors="silver red"),
    _c("snowman", T, "snowwoman | muñeco bonhomme schneemann снеговик 雪だるま ⛄", habitat="snowland",
       colors="white", plural="snowmen"),
    _c("book", T, "storybook diary notebook | libro livre buch книга 本 📖", habitat="library", colors="green"),
    _c("car", T, "truck bus tractor | coche voiture auto macchina машина 車 🚗", habitat="city", colors="red"),
    _c("tree", T, "oak pine willow birch | árbol arbre baum albero дерево 木 🌳", habitat="forest",
       colors="green"),
    _c("star", T, "stars | estrella étoile stern stella звезда 星 ほし ⭐ 🌟", habitat="space", colors="gold"),
    _c("cloud", T, "clouds | nube nuage wolke nuvola облако 雲 くも ☁", habitat="sky", colors="white"),
    # settings --------------------------------------------------------------------------------
    _c("meadow", S, "meadows field fields hill hills hilltop countryside valley prairie grassland pasture | prado "
       "pré wiese prato луг 野原 草原"),
    _c("forest", S, "forests wood woods woodland woodlands grove | bosque forêt foret wald foresta floresta лес 森 林 "
       "🌲"),
    _c("jungle", S, "jungles rainforest | selva dschungel giungla джунгли ジャングル 🌴"),
    _c("sea", S, "seas ocean oceans waves | mar mer meer море 海 うみ 🌊"),
    _c("coast", S, "shore shores beach beaches seaside cliff cliffs bay harbour harbor port dock pier coastline "
       "| playa plage strand spiaggia пляж 浜 港 🏖"),
    _c("island", S, "islands isle | isla île ile insel isola остров 島 しま 🏝"),
    _c("river", S, "rivers stream streams creek brook canal canals | río rio rivière riviere fleuve fluss fiume "
       "река 川 かわ 河"),
    _c("lake", S, "lakes pond ponds lagoon | lago lac teich озеро 湖 みずうみ"),
    _c("underwater", S, "reef reefs seabed seafloor | underwater undersea 海底 🐠", noun="reef"),
    _c("city", S, "cities streets street metropolis skyscraper skyscrapers rooftops | ciudad ville stadt "
       "città citta город 都市 街 まち 🏙 paris london tokyo rome venice berlin madrid cairo sydney lisbon prague "
       "vienna amsterdam moscow kyoto istanbul"),
    _c("village", S, "villages town towns hamlet | pueblo dorf villaggio деревня 村 むら 🏘"),
    _c("castle", S, "castles palace palaces fortress kingdom | castillo château chateau schloss burg castello "
       "замок 城 しろ 🏰"),
    _c("desert", S, "deserts dunes dune sahara oasis | desierto désert wüste wueste deserto пустыня 砂漠 🏜"),
    _c("mountains", S, "mountain peak peaks summit alps cliffside | montaña montana montagne berg berge gebirge "
       "montagna гора горы 山 やま 🏔 ⛰", noun="mountains"),
    _c("volcano", S, "volcanoes | volcán volcan vulkan vulcano вулкан 火山 🌋", plural="volcanoes"),
    _c("snowland", S, "arctic tundra glacier glaciers iceberg icebergs ice snowfield "
       "snowfields | antarctic antarctica ártico arctique arktis artico арктика 北極 🧊", noun="frozen north"),
    _c("space", S, "outer-space galaxy galaxies universe cosmos nebula | espacio espace weltraum weltall spazio "
       "космос 宇宙 うちゅう 🌌"),
    _c("sky", S, "skies heavens | cielo ciel himmel небо 空 そら"),
    _c("cave", S, "caves cavern caverns tunnel tunnels underground | cueva grotte höhle grotta пещера "
       "洞窟"),
    _c("garden", S, "gardens orchard park parks | jardín jardin garten giardino сад 庭 🌷"),
    _c("farm", S, "farms farmyard barn ranch | granja ferme bauernhof fattoria ферма 農場 🚜"),
    _c("swamp", S, "swamps marsh marshes bog bayou wetland wetlands | pantano marais sumpf palude болото 沼"),
    _c("library", S, "libraries bookshop bookstore school classroom museum | biblioteca bibliothèque bibliothek "
       "библиотека 図書館 📚", plural="libraries"),
    _c("room", S, "bedroom kitchen attic bakery workshop shop | habitación chambre zimmer stanza "
       "комната 部屋"),
    # landmarks -------------------------------------------------------------------------------
    _c("lighthouse", L, "lighthouses | faro phare leuchtturm маяк 灯台", habitat="coast"),
    _c("tower", L, "towers | torre tour turm башня 塔", habitat="meadow"),
    _c("windmill", L, "windmills | molino moulin windmühle mulino мельница 風車", habitat="farm"),
    _c("pyramid", L, "pyramids | pirámide pyramide pyramide пирамида", habitat="desert"),
    _c("bridge", L, "bridges | puente pont brücke ponte мост 橋 はし 🌉", habitat="river"),
    _c("igloo", L, "igloos | iglú иглу", habitat="snowland"),
    _c("house", L, "houses cottage cottages cabin hut | casa maison haus дом 家 いえ 🏠", habitat="village"),
    _c("tent", L, "tents camp campsite | tienda zelt палатка ⛺", habitat="meadow"),
    # props -----------------------------------------------------------------------------------
    _c("chest", PR, "treasure treasures chests | coffre schatz сокровище 宝 💰", plural="chests"),
    _c("map", PR, "maps | mapa carte karte карта 地図 🗺"),
    _c("key", PR, "keys | llave clé schlüssel ключ 鍵 🔑"),
    _c("flower", PR, "flowers tulip tulips daisy daisies blossom blossoms poppy poppies | flor fleur "
       "blume fiore цветок 花 はな 🌸 🌼"),
    _c("mushroom", PR, "mushrooms toadstool toadstools | seta champignon pilz fungo гриб 茸 きのこ 🍄"),
    _c("campfire", PR, "fire bonfire | hoguera feu lagerfeuer fuoco костёр костер 焚き火 🔥"),
    _c("cactus", PR, "cacti cactuses | cacto kaktus кактус サボテン 🌵", plural="cacti"),
    _c("palm", PR, "palms palm-tree | palmera palmier palme palma пальма ヤシ"),
    _c("crown", PR, "crowns | corona couronne krone корона 王冠 👑"),
    _c("bell", PR, "bells | campana cloche glocke колокол 鐘 🔔"),
    _c("sled", PR, "sledge sleigh toboggan | trineo traîneau schlitten сани そり 🛷"),
    _c("egg", PR, "eggs | huevo œuf oeuf ei uovo яйцо 卵 🥚"),
    _c("crystal", PR, "crystals gem gems jewel jewels diamond diamonds | cristal kristall кристалл 水晶 💎"),
    # sky -------------------------------------------------------------------------------------
    _c("moon", SK, "moons | luna lune mond месяц луна 月 つき 🌙 🌕 moonlight moonlit"),
    _c("planet", SK, "planets mars jupiter saturn comet comets | planeta planète planet pianeta планета 惑星 🪐"),
    _c("rainbow", SK, "rainbows | arcoíris arcoiris arc-en-ciel regenbogen arcobaleno радуга 虹 にじ 🌈"),
    _c("aurora", SK, "auroras northern-lights | aurore polarlicht オーロラ", noun="northern lights"),
    # weather ---------------------------------------------------------------------------------
    _c("storm", W, "storms stormy thunder thunderstorm thunderstorms lightning tempest hurricane gale gales "
       "| tormenta tempête tempete sturm tempesta гроза буря 嵐 あらし ⛈ 🌩"),
    _c("rain", W, "rains rainy raining rained rainfall drizzle downpour raindrops | lluvia pluie regen pioggia "
       "дождь 雨 あめ 🌧 ☔"),
    _c("snow", W, "snowy snowing snowfall snowflake snowflakes blizzard frost frosty | nieve neige schnee neve "
       "снег 雪 ゆき ❄"),
    _c("fog", W, "foggy mist misty haze hazy | niebla brouillard nebel nebbia туман 霧 きり 🌫"),
    _c("wind", W, "windy breeze breezes gust gusts | viento vent windig vento ветер 風 かぜ 💨"),
    # time of day -----------------------------------------------------------------------------
    _c("night", TI, "nights midnight nighttime darkness dark starlight starry | noche nuit nacht notte ночь "
       "夜 よる 🌃"),
    _c("dawn", TI, "sunrise daybreak morning mornings | amanecer aube matin morgen alba утро 朝 あさ 🌅"),
    _c("day", TI, "noon midday afternoon daylight sunshine sunny sunlit | día jour giorno день 昼"),
    _c("dusk", TI, "sunset sundown evening evenings twilight | atardecer soir abend sera вечер 夕方 夕 🌇"),
)  # fmt: skip

# Words that name one real place: a story writes them capitalised and without an article.
PLACE_NAMES = frozenset(
    [
        "paris",
        "london",
        "tokyo",
        "rome",
        "venice",
        "berlin",
        "madrid",
        "cairo",
        "sydney",
        "lisbon",
        "prague",
        "vienna",
        "amsterdam",
        "moscow",
        "kyoto",
        "istanbul",
        "sahara",
        "antarctica",
        "mars",
        "jupiter",
        "saturn",
    ]
)
NO_ARTICLE = frozenset({"space", "outer space"})

CONCEPTS_BY_KEY: dict[str, Concept] = {concept.key: concept for concept in CONCEPTS}


def _word_index() -> dict[str, Concept]:
    index: dict[str, Concept] = {}
    for concept in CONCEPTS:
        forms = [*concept.words, concept.noun, concept.plural_noun]
        for form in forms:
            # A hyphen stands for a space so multi-word names ("outer-space") fit one table cell.
            index.setdefault(form.replace("-", " "), concept)
        if concept.category is not Category.TIME and " " not in concept.noun:
            index.setdefault(pluralize(concept.noun), concept)
    return index


def pluralize(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        plural = last[:-1] + "ies"
    elif last.endswith("f") and last not in ("roof", "chief"):
        plural = last[:-1] + "ves"
    else:
        plural = last + "s"
    return f"{head} {plural}".strip()


WORD_INDEX: dict[str, Concept] = {}
MAX_PHRASE_WORDS = 3
# Scripts written without spaces are looked up by substring, so "狐と月" finds the fox and the moon.
UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\U0001F300-\U0001FAFF\u2600-\u27bf\u2b00-\u2bff]")
UNSPACED_FORMS: list[tuple[str, Concept]] = []


def _build() -> None:
    WORD_INDEX.update(_word_index())
    UNSPACED_FORMS.extend(
        sorted(
            ((form, concept) for form, concept in WORD_INDEX.items() if UNSPACED.search(form)),
            key=lambda item: -len(item[0]),
        )
    )


_build()


def lookup(words: list[str], start: int) -> tuple[Concept, int] | None:
    """The concept named at ``words[start]`` (longest phrase first) and how many words it takes."""
    for length in range(min(MAX_PHRASE_WORDS, len(words) - start), 0, -1):
        concept = WORD_INDEX.get(" ".join(words[start : start + length]))
        if concept is not None:
            return concept, length
    return None


def unspaced_concepts(text: str) -> list[tuple[int, Concept]]:
    """Concepts found inside runs of CJK text or emoji, by position."""
    found: list[tuple[int, Concept]] = []
    taken: set[int] = set()
    for form, concept in UNSPACED_FORMS:
        for match in re.finditer(re.escape(form), text):
            span = set(range(match.start(), match.end()))
            if not span & taken:
                taken |= span
                found.append((match.start(), concept))
    return sorted(found, key=lambda item: item[0])


# --- colours --------------------------------------------------------------------------------------

COLORS: dict[str, Color] = {
    "red": (204, 52, 46), "crimson": (168, 30, 56), "scarlet": (224, 48, 38), "rust": (172, 76, 38),
    "russet": (190, 92, 40), "ginger": (214, 116, 46), "orange": (238, 130, 40), "amber": (240, 172, 44),
    "honey": (222, 168, 72), "mustard": (206, 168, 44), "gold": (232, 184, 52), "yellow": (246, 204, 58),
    "lemon": (248, 228, 92), "cream": (244, 230, 196), "ivory": (250, 244, 226), "white": (246, 246, 240),
    "sand": (226, 198, 146), "tan": (200, 158, 108), "ochre": (204, 140, 52), "terracotta": (198, 98, 68),
    "coral": (242, 118, 98), "peach": (248, 178, 140), "pink": (238, 148, 178), "rose": (218, 106, 128),
    "plum": (118, 50, 92), "lilac": (188, 158, 220), "violet": (140, 90, 200), "purple": (122, 62, 162),
    "indigo": (72, 62, 150), "navy": (32, 46, 102), "blue": (52, 102, 212), "sky blue": (118, 180, 236),
    "slate blue": (92, 112, 150), "cobalt": (40, 78, 180), "turquoise": (62, 190, 190), "teal": (30, 132, 132),
    "mint": (160, 224, 190), "sage": (150, 180, 138), "olive": (122, 130, 52), "green": (62, 152, 72),
    "emerald": (30, 142, 92), "brown": (122, 80, 50), "chestnut": (142, 72, 40), "chocolate": (92, 56, 36),
    "grey": (140, 140, 146), "gray": (140, 140, 146), "silver": (190, 196, 206), "charcoal": (62, 64, 70),
    "black": (34, 32, 36), "copper": (192, 112, 62), "bronze": (172, 122, 62), "slate": (100, 110, 124),
}  # fmt: skip
COLOR_MODIFIERS: dict[str, tuple[Color, float]] = {
    "dark": ((0, 0, 0), 0.4),
    "deep": ((0, 0, 0), 0.3),
    "light": ((255, 255, 255), 0.4),
    "pale": ((255, 255, 255), 0.5),
    "soft": ((255, 255, 255), 0.25),
    "warm": ((255, 170, 90), 0.15),
    "dusky": ((70, 50, 90), 0.25),
    "bright": ((255, 255, 255), 0.05),
}
COLOR_PATTERN = re.compile(
    r"\b(?:(" + "|".join(COLOR_MODIFIERS) + r")[\s-]+)?(" + "|".join(sorted(COLORS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def mix(a: Color, b: Color, t: float) -> Color:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def colors_in(text: str) -> list[tuple[str, Color]]:
    """Each colour named in ``text``, in order, with its modifier applied ("deep navy")."""
    found: list[tuple[str, Color]] = []
    for match in COLOR_PATTERN.finditer(text):
        modifier, name = (match.group(1) or "").lower(), match.group(2).lower()
        color = COLORS[name]
        if modifier:
            toward, amount = COLOR_MODIFIERS[modifier]
            color = mix(color, toward, amount)
        found.append((match.group(0).lower(), color))
    return found


# --- words that carry grammar, not meaning --------------------------------------------------------

ARTICLES = frozenset({"a", "an", "the"})
POSSESSIVES = frozenset({"my", "his", "her", "their", "its", "our", "your"})
DETERMINERS = ARTICLES | POSSESSIVES | frozenset({"some", "one", "this", "that", "every", "each", "another"})
PREPOSITIONS = frozenset(
    [
        "in",
        "on",
        "at",
        "to",
        "into",
        "onto",
        "from",
        "of",
        "by",
        "with",
        "for",
        "across",
        "through",
        "over",
        "under",
        "above",
        "below",
        "beneath",
        "near",
        "beside",
        "behind",
        "beyond",
        "inside",
        "outside",
        "around",
        "toward",
        "towards",
        "along",
        "past",
        "between",
        "among",
        "without",
        "up",
        "down",
        "off",
    ]
)
CONJUNCTIONS = frozenset({"and", "or", "but", "so", "because", "while", "when", "until", "if", "as", "then"})
RELATIVES = frozenset({"who", "that", "which", "whose", "whom", "where"})
PRONOUNS = frozenset(
    [
        "i",
        "me",
        "you",
        "he",
        "him",
        "she",
        "it",
        "we",
        "us",
        "they",
        "them",
        "himself",
        "herself",
        "itself",
        "themselves",
    ]
)
BE_VERBS = frozenset({"is", "was", "are", "were", "be", "been", "being", "am", "'s"})
AUXILIARIES = frozenset({"can", "could", "will", "would", "shall", "should", "may", "might", "must", "does", "did"})
NEGATIONS = frozenset(
    {"can't", "cannot", "couldn't", "won't", "wouldn't", "doesn't", "didn't", "isn't", "wasn't", "never", "not"}
)
# Articles and small words of the languages the vocabulary knows a little of.
FOREIGN_FUNCTION_WORDS = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "lo",
        "le",
        "les",
        "l",
        "un",
        "una",
        "une",
        "uno",
        "unos",
        "des",
        "du",
        "de",
        "del",
        "der",
        "die",
        "das",
        "den",
        "dem",
        "ein",
        "eine",
        "einen",
        "einem",
        "und",
        "y",
        "et",
        "e",
        "o",
        "il",
        "gli",
        "i",
        "al",
        "au",
        "aux",
        "и",
        "в",
        "на",
        "с",
        "的",
        "の",
        "と",
    ]
)
FUNCTION_WORDS = (
    DETERMINERS
    | PREPOSITIONS
    | CONJUNCTIONS
    | RELATIVES
    | PRONOUNS
    | BE_VERBS
    | AUXILIARIES
    | NEGATIONS
    | FOREIGN_FUNCTION_WORDS
    | frozenset({"not", "no", "very", "too", "also", "just", "once", "there", "here", "upon", "time", "about"})
)

# Adjectives a story may keep in front of its hero ("a shy octopus"); other words before a noun are
# dropped, because an unknown word there is as likely a verb or a typo as an adjective.
TRAITS = frozenset(
    [
        "curious",
        "brave",
        "shy",
        "clever",
        "gentle",
        "stubborn",
        "cheerful",
        "restless",
        "dreamy",
        "kind",
        "lonely",
        "sleepy",
        "grumpy",
        "clumsy",
        "quiet",
        "bold",
        "wise",
        "lost",
        "hungry",
        "bored",
        "sad",
        "happy",
        "proud",
        "nervous",
        "timid",
        "fearless",
        "silly",
        "playful",
        "lazy",
        "busy",
        "tired",
        "wild",
        "young",
        "old",
        "little",
        "small",
        "tiny",
        "big",
        "giant",
        "huge",
        "enormous",
        "ancient",
        "baby",
        "brave-hearted",
        "forgetful",
        "lucky",
        "unlucky",
        "clockwork",
        "paper",
        "wooden",
        "golden",
        "tin",
        "glass",
        "stone",
        "mechanical",
        "magic",
        "magical",
        "rusty",
        "fluffy",
        "spotted",
        "striped",
        "friendly",
        "angry",
        "grumpy",
        "scared",
        "frightened",
        "worried",
        "hopeful",
        "cunning",
        "sneaky",
        "noisy",
        "loud",
        "polite",
        "rude",
    ]
)
FOREIGN_TRAITS: dict[str, str] = {
    "petit": "little", "petite": "little", "klein": "little", "kleine": "little", "kleiner": "little",
    "kleines": "little", "pequeño": "little", "pequeña": "little", "pequeno": "little", "piccolo": "little",
    "piccola": "little", "маленький": "little", "маленькая": "little", "valiente": "brave", "mutig": "brave",
    "courageux": "brave", "triste": "sad", "viejo": "old", "vieja": "old", "vieux": "old", "alt": "old",
    "alte": "old", "grande": "big", "großer": "big", "grosse": "big",
}  # fmt: skip
# Traits that make a goal on their own when the prompt gives none.
TRAIT_GOALS: dict[str, str] = {
    "lonely": "find a friend",
    "lost": "find the way home",
    "shy": "make one true friend",
    "scared": "find some courage",
    "frightened": "find some courage",
    "timid": "find some courage",
    "hungry": "find a feast",
    "bored": "find a real adventure",
    "sad": "find something to smile about",
    "sleepy": "find the perfect place to sleep",
    "tiny": "prove that small can be mighty",
    "forgetful": "remember the way home",
}
ABSTRACT_GOALS: dict[str, str] = {
    "hope": "find hope",
    "love": "find love",
    "courage": "find some courage",
    "friendship": "find a true friend",
    "friend": "find a true friend",
    "home": "find a way home",
    "joy": "find joy",
    "peace": "bring peace",
    "luck": "find some luck",
    "magic": "find real magic",
    "music": "bring music back",
    "wonder": "find something wonderful",
    "freedom": "be free",
    "kindness": "spread kindness",
    "happiness": "find happiness",
    "light": "bring back the light",
    "dreams": "follow a dream",
    "dream": "follow a dream",
    "adventure": "find a real adventure",
    "quest": "finish a great quest",
    "journey": "make a long journey",
    "secret": "uncover a secret",
    "mystery": "solve a mystery",
}

# --- verbs ----------------------------------------------------------------------------------------

# base: past (and participle), for verbs whose past is not base+ed
IRREGULAR_PAST: dict[str, str] = {
    "be": "was", "have": "had", "do": "did", "go": "went", "fly": "flew", "find": "found", "build": "built",
    "bring": "brought", "catch": "caught", "sing": "sang", "make": "made", "become": "became", "hide": "hid",
    "get": "got", "win": "won", "steal": "stole", "grow": "grew", "swim": "swam", "run": "ran", "ride": "rode",
    "keep": "kept", "forget": "forgot", "wake": "woke", "sleep": "slept", "speak": "spoke", "hear": "heard",
    "see": "saw", "fall": "fell", "teach": "taught", "leave": "left", "lose": "lost", "meet": "met",
    "seek": "sought", "sell": "sold", "buy": "bought", "give": "gave", "take": "took", "begin": "began",
    "say": "said", "tell": "told", "think": "thought", "know": "knew", "come": "came", "eat": "ate",
    "drink": "drank", "sit": "sat", "stand": "stood", "rise": "rose", "shine": "shone", "hold": "held",
    "throw": "threw", "sink": "sank", "spin": "spun", "swing": "swung", "shoot": "shot", "break": "broke",
    "freeze": "froze", "write": "wrote", "read": "read", "draw": "drew", "light": "lit", "feed": "fed",
    "lead": "led", "drive": "drove", "dig": "dug", "shrink": "shrank", "fight": "fought", "bake": "baked",
    "wear": "wore", "weave": "wove", "sew": "sewed", "blow": "blew", "cut": "cut", "put": "put", "let": "let",
    "lie": "lay", "send": "sent", "spend": "spent", "feel": "felt", "mean": "meant", "understand": "understood",
    "undertake": "undertook", "overcome": "overcame", "bite": "bit", "slide": "slid", "strike": "struck",
}  # fmt: skip
DOUBLING = frozenset(
    [
        "stop",
        "plan",
        "drop",
        "hug",
        "chat",
        "jog",
        "rob",
        "skip",
        "trip",
        "shop",
        "beg",
        "grab",
        "nap",
        "pat",
        "tap",
        "wrap",
        "trap",
        "knit",
        "fit",
        "admit",
        "travel",
        "chop",
        "clap",
        "flap",
        "hop",
        "mop",
        "nod",
        "rub",
        "scrub",
        "slip",
        "step",
        "tip",
        "zip",
        "jam",
        "stir",
        "spin",
        "swim",
        "run",
        "dig",
        "win",
        "sit",
    ]
)
REGULAR_VERBS = frozenset(
    [
        "learn",
        "befriend",
        "save",
        "rescue",
        "search",
        "look",
        "want",
        "wish",
        "hope",
        "dream",
        "try",
        "decide",
        "need",
        "escape",
        "explore",
        "visit",
        "cross",
        "climb",
        "sail",
        "discover",
        "paint",
        "dance",
        "cook",
        "chase",
        "help",
        "fix",
        "open",
        "follow",
        "return",
        "reach",
        "solve",
        "protect",
        "guard",
        "deliver",
        "carry",
        "collect",
        "count",
        "jump",
        "race",
        "play",
        "remember",
        "talk",
        "watch",
        "love",
        "like",
        "hate",
        "fear",
        "defeat",
        "outwit",
        "trick",
        "tame",
        "train",
        "invent",
        "repair",
        "miss",
        "live",
        "wander",
        "walk",
        "plant",
        "tend",
        "knit",
        "carve",
        "hunt",
        "fetch",
        "share",
        "join",
        "start",
        "finish",
        "end",
        "change",
        "move",
        "whisper",
        "listen",
        "wait",
        "kick",
        "push",
        "pull",
        "lift",
        "dive",
        "float",
        "care",
        "cry",
        "laugh",
        "smile",
        "hug",
        "kiss",
        "guide",
        "adopt",
        "cure",
        "heal",
        "shrink",
        "turn",
        "melt",
        "unlock",
        "lock",
        "capture",
        "free",
        "release",
        "welcome",
        "greet",
        "invite",
        "host",
        "organise",
        "organize",
        "plan",
        "compete",
        "enter",
        "stop",
        "hop",
        "bounce",
        "climb",
        "juggle",
        "glow",
        "roar",
        "sneeze",
        "yawn",
        "knock",
        "mend",
        "shelter",
        "calm",
        "tidy",
        "clean",
        "paddle",
        "row",
        "skate",
        "ski",
        "sled",
        "fish",
        "bake",
        "wonder",
        "arrive",
        "measure",
        "light",
        "battle",
        "conquer",
    ]
)
GOAL_VERBS = frozenset(REGULAR_VERBS | IRREGULAR_PAST.keys())


def third_person(base: str) -> str:
    if base in ("be", "have", "do", "go"):
        return {"be": "is", "have": "has", "do": "does", "go": "goes"}[base]
    return pluralize(base)


def past_tense(base: str) -> str:
    if base in IRREGULAR_PAST:
        return IRREGULAR_PAST[base]
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2:-1] not in ("a", "e", "i", "o", "u"):
        return base[:-1] + "ied"
    if base in DOUBLING:
        return base + base[-1] + "ed"
    return base + "ed"


def gerund(base: str) -> str:
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) and base != "be":
        return base[:-1] + "ing"
    if base in DOUBLING:
        return base + base[-1] + "ing"
    return base + "ing"


def _verb_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for base in sorted(GOAL_VERBS):
        for form in (third_person(base), past_tense(base), gerund(base), base):
            index.setdefault(form, base)
    return index


VERB_FORMS: dict[str, str] = _verb_index()
# Forms that only a verb takes ("learns", "befriended", "flying"): never the head of a noun phrase.
INFLECTED_VERB_FORMS = frozenset(form for form, base in VERB_FORMS.items() if form != base)


def verb_base(word: str) -> str | None:
    """The base form of a known verb form ("befriends" -> "befriend"), else None."""
    return VERB_FORMS.get(word)


def guess_base(word: str) -> str:
    """A third-person form's base, by spelling alone ("juggles" -> "juggle")."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def indefinite(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front, by its sound."""
    first = phrase.split(" ", 1)[0].lower()
    vowel = first[:1] in ("a", "e", "i", "o", "u") and not first.startswith(("uni", "use", "usu", "eu", "one"))
    return f"{'an' if vowel or first in ('hour', 'honest', 'heir') else 'a'} {phrase}"


# --- names ----------------------------------------------------------------------------------------

NAMES: dict[Category, tuple[str, ...]] = {
    Category.PERSON: ("Mira", "Tobin", "Ivy", "Orrin", "Nico", "Lumi", "Theo", "Ines", "Arlo", "Esme", "Rafi",
                      "Noor", "Sami", "Yuki", "Bea", "Otto"),
    Category.ANIMAL: ("Ember", "Pip", "Bramble", "Hazel", "Sorrel", "Clover", "Fennel", "Nutmeg", "Biscuit",
                      "Pebble", "Thistle", "Juniper", "Tansy", "Barley"),
    Category.ROBOT: ("Bolt", "Cog", "Tinker", "Sprocket", "Widget", "Rivet", "Dynamo", "Gizmo"),
    Category.THING: ("Dot", "Button", "Twiddle", "Pim", "Tilly", "Bo", "Figg", "Nim"),
}  # fmt: skip
TITLES = frozenset(
    [
        "captain",
        "doctor",
        "dr",
        "professor",
        "sir",
        "lady",
        "lord",
        "queen",
        "king",
        "princess",
        "prince",
        "old",
        "little",
        "aunt",
        "uncle",
        "granny",
        "grandpa",
        "grandma",
        "mister",
        "mr",
        "mrs",
        "ms",
        "miss",
        "madame",
        "señor",
        "monsieur",
    ]
)


@dataclass(frozen=True)
class Looks:
    """Outfits and colours the writer may give a hero; the illustrator reads the colours back."""

    person_outfits: tuple[tuple[str, str], ...] = (
        ("raincoat", "boots"),
        ("cloak", "scarf"),
        ("sweater", "cap"),
        ("coat", "scarf"),
        ("jacket", "boots"),
        ("dress", "hat"),
        ("tunic", "belt"),
    )
    animal_accessories: tuple[str, ...] = ("scarf", "collar", "bandana", "neckerchief")
    outfit_colors: tuple[str, ...] = ("yellow", "red", "teal", "blue", "green", "orange", "purple", "coral")
    accent_colors: tuple[str, ...] = ("red", "yellow", "teal", "blue", "green", "orange", "purple", "white")
    hair_colors: tuple[str, ...] = ("dark brown", "black", "ginger", "chestnut", "light brown", "grey")
    robot_colors: tuple[str, ...] = ("silver", "copper", "teal", "blue", "red", "yellow")
    thing_colors: tuple[str, ...] = ("red", "blue", "yellow", "teal", "green", "orange", "purple")
    palettes: tuple[tuple[str, str, str], ...] = field(
        default=(
            ("warm ochre", "teal", "cream"),
            ("dusky violet", "coral", "gold"),
            ("sage", "sky blue", "soft white"),
            ("deep navy", "amber", "rose"),
            ("terracotta", "olive", "sand"),
            ("plum", "peach", "mint"),
            ("slate blue", "mustard", "ivory"),
            ("emerald", "coral", "cream"),
            ("indigo", "honey", "lilac"),
            ("rust", "sage", "cream"),
        )
    )


LOOKS = Looks()
